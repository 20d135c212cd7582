"""Guards on every served request: personal data and prompt injection, inputs and outputs.

A policy per prompt says what a hit does: ``log`` counts it and passes the text, ``redact``
replaces each piece of personal data by its kind (``[EMAIL]``) before the model (input) or
the application (output) sees it, ``block`` refuses the request with :class:`GuardBlocked`
(``workbench serve``: HTTP 400 with the guard, the stage and the reason). A blocked input
costs nothing: it is refused before the call. The scanners are the offline ones of
``workbench.evaluation.scorers.safety`` (regexes and checksums, well under a millisecond).

Streams: the input is guarded as for a complete; with an output policy of ``redact`` or
``block`` the pieces are held back until the model has finished, then the scanned text is
yielded as one piece (or ``GuardBlocked`` raised before anything was shown). With ``log``
the pieces flow as they come and the assembled text is scanned at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import WorkbenchError

Action = Literal["log", "redact", "block"]
GUARDS = ("pii", "prompt_injection")
STAGES = ("input", "output")
ACTIONS = ("log", "redact", "block")


class GuardConfigError(WorkbenchError):
    """A ``guard=`` policy (or a ``guard:`` section of workbench.yaml) is invalid."""


class GuardBlocked(WorkbenchError):
    """A guard refused the request; ``reason`` is safe to show (personal data is masked)."""

    def __init__(self, guard: str, stage: str, reason: str, request_id: str = "") -> None:
        self.guard, self.stage, self.reason, self.request_id = guard, stage, reason, request_id
        super().__init__(f"the request was blocked by the {guard} guard on its {stage}: "
                         f"{reason}")

    def as_dict(self) -> dict[str, str]:
        return {"error": "guard_blocked", "guard": self.guard, "stage": self.stage,
                "reason": self.reason, "request_id": self.request_id}


@dataclass(frozen=True)
class GuardHit:
    """One guard that found something in one stage, and what its policy did about it."""

    guard: str
    stage: str
    action: str
    reason: str


class Guard:
    """The scanners and the policy of one service: ``Guard({"pii": "redact"})``.

    A policy value is an action for both stages, or ``{"input": ..., "output": ...}``.
    ``prompt_injection`` can ``log`` or ``block`` (there is nothing to redact).
    ``observers`` are called with ``(tags, hits)`` for each request with hits (metrics).
    """

    def __init__(self, policy: Mapping[str, Any]) -> None:
        self.actions = _parse(policy)
        self.observers: list[Callable[[Mapping[str, str], list[GuardHit]], None]] = []
        from ..evaluation.scorers import safety  # loaded only for a guarded service

        self._safety = safety

    @classmethod
    def of(cls, value: Guard | Mapping[str, Any] | None) -> Guard | None:
        if value is None or isinstance(value, Guard):
            return value
        if not isinstance(value, Mapping):
            raise GuardConfigError(
                f"guard={value!r}: give a mapping such as {{'pii': 'redact', "
                "'prompt_injection': 'block'}")
        return cls(value) if value else None

    def action(self, guard: str, stage: str) -> str | None:
        return self.actions.get((guard, stage))

    @property
    def holds_stream(self) -> bool:
        """Whether a stream must be held back until its text is scanned."""
        return any(self.action(g, "output") in ("redact", "block") for g in GUARDS)

    def scan_inputs(self, variables: Mapping[str, Any]) -> tuple[dict[str, Any], list[GuardHit]]:
        """The variables as the model may see them, and the hits; ``GuardBlocked`` on block."""
        texts = list(_strings(variables))
        found = {t: self._safety.find_pii(t) for t in texts} if self.action("pii", "input") \
            else {}
        hits = self._hits("input", texts, [m for ms in found.values() for m in ms])
        values = dict(variables)
        if any(h.guard == "pii" and h.action == "redact" for h in hits):
            values = {k: _map_strings(v, lambda t: _masked(t, found.get(t, [])))
                      for k, v in values.items()}
        return values, hits

    def scan_output(self, text: str) -> tuple[str, list[GuardHit]]:
        """The output as the application may see it, and the hits (``block`` is a hit whose
        caller raises, so the hit is counted first)."""
        matches = self._safety.find_pii(text) if self.action("pii", "output") else []
        hits = self._hits("output", [text], matches)
        if any(h.guard == "pii" and h.action == "redact" for h in hits):
            text = _masked(text, matches)
        return text, hits

    def _hits(self, stage: str, texts: list[str], matches: list[Any]) -> list[GuardHit]:
        hits = []
        if matches:
            shown = ", ".join(f"{m.kind} {m.masked}" for m in matches[:5])
            more = f" (+{len(matches) - 5} more)" if len(matches) > 5 else ""
            hits.append(GuardHit("pii", stage, self.actions[("pii", stage)],
                                 f"personal data: {shown}{more}"))
        if self.action("prompt_injection", stage):
            patterns = sorted({p for t in texts for p in self._safety.find_injection(t)})
            if patterns:
                hits.append(GuardHit("prompt_injection", stage,
                                     self.actions[("prompt_injection", stage)],
                                     f"injection patterns: {patterns}"))
        return hits

    def notify(self, tags: Mapping[str, str], hits: list[GuardHit]) -> None:
        for observer in self.observers:
            try:
                observer(tags, hits)
            except Exception:  # counting never fails a request
                import logging

                logging.getLogger("workbench.serving").exception("a guard observer failed")

    def __repr__(self) -> str:
        shown = {f"{g}.{s}": a for (g, s), a in sorted(self.actions.items())}
        return f"Guard({shown})"


def blocked(hits: list[GuardHit], request_id: str = "") -> GuardBlocked | None:
    """The error for the first hit whose policy blocks, if any."""
    hit = next((h for h in hits if h.action == "block"), None)
    return None if hit is None else GuardBlocked(hit.guard, hit.stage, hit.reason, request_id)


def _parse(policy: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    actions: dict[tuple[str, str], str] = {}
    for guard, value in policy.items():
        if guard not in GUARDS:
            raise GuardConfigError(f"guard: unknown guard {guard!r}; fix: use one of "
                                   f"{list(GUARDS)}")
        stages = value if isinstance(value, Mapping) else dict.fromkeys(STAGES, value)
        for stage, action in stages.items():
            if stage not in STAGES:
                raise GuardConfigError(f"guard: {guard}: unknown stage {stage!r}; fix: use "
                                       f"{list(STAGES)}")
            if action is None:
                continue
            allowed = ("log", "block") if guard == "prompt_injection" else ACTIONS
            if action not in allowed:
                raise GuardConfigError(f"guard: {guard}: {stage}: {action!r} is not a policy; "
                                       f"fix: use one of {list(allowed)}")
            actions[(guard, stage)] = action
    return actions


def _masked(text: str, matches: list[Any]) -> str:
    """``text`` with each match replaced by its kind, as ``safety.redact`` writes it."""
    out, last = [], 0
    for match in matches:
        out += [text[last:match.start], f"[{match.kind.upper()}]"]
        last = match.end
    return "".join(out) + text[last:]


def _strings(value: Any) -> Any:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(v, fn) for v in value]
    return value


def count_hits(registry: Any, services: Any) -> None:
    """``workbench_guard_hits_total`` in an app's Prometheus registry, for every guarded
    service: labelled by application, prompt, guard, stage and action (never by user)."""
    from prometheus_client import Counter

    hits = Counter("workbench_guard_hits", "Requests in which a guard found something, by "
                   "guard, stage (input/output) and the policy's action",
                   ["application", "prompt", "guard", "stage", "action"], registry=registry)
    for service in services:
        if service.guard is None:
            continue

        def observe(tags: Mapping[str, str], found: list[GuardHit], name: str = service.name
                    ) -> None:
            for hit in found:
                hits.labels(tags.get("application") or "", name, hit.guard, hit.stage,
                            hit.action).inc()

        service.guard.observers.append(observe)
