"""Cost-based routing: requests of a given type go to a cheaper model, on evidence.

A rule sends the requests it matches (a ``request_type`` tag, a prompt of at most
``max_prompt_chars`` characters, or both) to ``to``, a cheaper model. Moving traffic to a
weaker model is a decision a test should back, so each rule cites ``evidence``: the MLflow
run id of an A/B whose logged verdict says the cheaper model is non-inferior to (or better
than) the model it replaces, on that request type. The run is read when the policy is
checked, before any call; a rule without evidence is refused unless ``forced`` gives the
reason. ``shadow`` sends that share of the routed requests to the replaced model too, off
the request path, and logs how the answers compare. ``PromptService`` applies the rules
of its prompt from the project's ``workbench.yaml`` unless it is given ``routes=``.

In ``workbench.yaml``::

    routing:
      - name: short-triage
        prompt: support-triage       # optional: only this served prompt
        request_type: triage
        to: {model: openai/gpt-4o-mini}
        evidence: 0f3c...            # the A/B's parent run
        shadow: 0.05
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import WorkbenchError
from .config import ModelConfig

log = logging.getLogger("workbench.gateway.routing")


class RoutingError(WorkbenchError):
    """A route rule is malformed or its evidence does not support it."""


class RouteRule(BaseModel):
    """Requests matching ``request_type`` and/or ``max_prompt_chars`` go to ``to``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    to: ModelConfig
    prompt: str | None = None  # only the requests of this served prompt; None: every one
    request_type: str | None = None
    max_prompt_chars: int | None = Field(default=None, gt=0)
    evidence: str | None = None  # the MLflow run id of the A/B behind the rule
    forced: str | None = None  # why the rule stands without evidence
    shadow: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _matches_something_and_has_a_reason(self) -> RouteRule:
        if self.request_type is None and self.max_prompt_chars is None:
            raise ValueError(f"route {self.name!r}: give request_type and/or max_prompt_chars "
                             "(a rule that matches every request is a model change)")
        if not self.evidence and not (self.forced or "").strip():
            raise ValueError(
                f"route {self.name!r} sends requests to {self.to.model} without evidence; "
                "fix: give evidence: <MLflow run id of an A/B whose verdict says "
                f"{self.to.model} is non-inferior on this request type>, or forced: <reason>")
        return self

    def matches(self, messages: Sequence[Mapping[str, Any]], tags: Mapping[str, str]) -> bool:
        if self.request_type is not None and tags.get("request_type") != self.request_type:
            return False
        if self.max_prompt_chars is not None:
            size = sum(len(str(m.get("content") or "")) for m in messages)
            return size <= self.max_prompt_chars
        return True


@dataclass(frozen=True)
class Decision:
    """Where one request goes: ``model``, by ``rule``; ``shadow`` also gets it, off-path."""

    rule: str
    model: ModelConfig
    shadow: ModelConfig | None = None


class RoutePolicy(BaseModel):
    """Rules tried in order; the first that matches routes the request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RouteRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_names(self) -> RoutePolicy:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"route names must be distinct: {names}")
        return self

    def for_prompt(self, name: str) -> RoutePolicy:
        """The rules that apply to the served prompt ``name``."""
        return RoutePolicy(rules=[r for r in self.rules if r.prompt in (None, name)])

    def check(self, replaced: ModelConfig, tracking_uri: str | None = None) -> dict[str, str]:
        """Check each rule's evidence against ``replaced`` (the model it moves traffic from);
        returns rule name → the verdict (or the forced reason). Raises ``RoutingError``."""
        found = {}
        for rule in self.rules:
            if rule.evidence:
                found[rule.name] = check_evidence(rule, replaced.model, tracking_uri)
            else:
                log.warning("route %r sends %s requests to %s without evidence (forced: %s)",
                            rule.name, rule.request_type or "short", rule.to.model,
                            rule.forced)
                found[rule.name] = f"forced: {rule.forced}"
        return found

    def choose(self, model: ModelConfig, messages: Sequence[Mapping[str, Any]],
               tags: Mapping[str, str], rng: random.Random | None = None) -> Decision | None:
        """The first matching rule's decision, or None (the request keeps ``model``)."""
        for rule in self.rules:
            if rule.matches(messages, tags):
                draw = (rng or random).random()
                return Decision(rule.name, rule.to,
                                shadow=model if draw < rule.shadow else None)
        return None


def project_policy(start: str | Path | None = None) -> RoutePolicy | None:
    """The ``routing:`` section of the project's ``workbench.yaml``, if it has one."""
    from ..settings import project_root

    path = project_root(start) / "workbench.yaml"
    if not path.is_file():
        return None
    policy = load(path)
    return policy if policy.rules else None


def load(source: Path | Mapping[str, Any] | Sequence[Any]) -> RoutePolicy:
    """A policy from ``workbench.yaml`` (its ``routing:`` list), a mapping or a list."""
    where = "routing"
    if isinstance(source, Path):
        from ..files import load_yaml

        where = f"{source}: routing"
        data = load_yaml(source) or {}
        source = data.get("routing") or [] if isinstance(data, dict) else []
    rules = source.get("rules", []) if isinstance(source, Mapping) else source
    try:
        return RoutePolicy(rules=list(rules))
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors())
        raise RoutingError(f"{where}: {problems}") from None


def _problem(error: Mapping[str, Any]) -> str:
    loc = [str(p) for p in error["loc"]]
    where = f"rule {loc[1]}" + "".join(f".{p}" for p in loc[2:]) if loc[:1] == ["rules"] \
        else ".".join(loc)
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"


def check_evidence(rule: RouteRule, replaced: str, tracking_uri: str | None = None) -> str:
    """The verdict of ``rule.evidence`` when it says ``rule.to`` is non-inferior to (or
    better than) ``replaced`` on the rule's request type; else ``RoutingError``."""
    from mlflow.tracking import MlflowClient

    from ..settings import tracking_uri as default_uri

    uri = tracking_uri or default_uri()
    client = MlflowClient(uri)
    where = f"route {rule.name!r}: evidence run {rule.evidence!r}"
    try:
        run = client.get_run(rule.evidence)
    except Exception as exc:
        raise RoutingError(f"{where} is not in the tracking store {uri} ({type(exc).__name__})"
                           "; fix: give the parent run id of the A/B (MLflow UI or "
                           "results.run_ids['parent'])") from None
    tested = run.data.tags.get("workbench.request_type")
    if rule.request_type is not None and tested != rule.request_type:
        said = f"says it tested {tested!r}" if tested else "does not say which request type"
        raise RoutingError(
            f"{where} {said}, and the rule routes {rule.request_type!r} requests; fix: cite an "
            f"A/B on that traffic, or tag its run: MlflowClient().set_tag({rule.evidence!r}, "
            f"'workbench.request_type', {rule.request_type!r}) if its eval set is that traffic")
    report = _report(client, rule.evidence, where)
    models = _variant_models(client, run)
    for pair in report.get("pairs", []):
        a_model, b_model = models.get(pair.get("a")), models.get(pair.get("b"))
        if a_model == replaced and b_model == rule.to.model and (
                pair.get("non_inferior") or pair.get("winner") == pair.get("b")):
            return str(pair.get("verdict"))
    verdicts = "; ".join(f"{p.get('a')} vs {p.get('b')}: {p.get('verdict')}"
                         for p in report.get("pairs", [])) or "no pairs"
    raise RoutingError(
        f"{where} does not show {rule.to.model} non-inferior to {replaced} ({verdicts}); "
        "fix: run the A/B with a non-inferiority margin and cite that run, or give "
        "forced: <reason> to route without evidence")


def _report(client: Any, run_id: str, where: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = client.download_artifacts(run_id, "ab_report.json", folder)
        except Exception:
            raise RoutingError(f"{where} has no A/B report (ab_report.json); fix: cite the "
                               "parent run of an experiment with two or more variants") from None
        return json.loads(Path(path).read_text())


def _variant_models(client: Any, run: Any) -> dict[str, str]:
    """Variant name → model string, from the A/B's child runs."""
    out = {}
    children = run.data.tags.get("workbench.child_runs", "")
    for item in filter(None, children.split(",")):
        name, _, child_id = item.partition("=")
        try:
            out[name] = client.get_run(child_id).data.params.get("model")
        except Exception:  # a deleted child run names no model
            continue
    return out
