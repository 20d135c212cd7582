"""The request path's two insertion points for guards and monitoring, kept out of the service.

``screen_input`` runs before the call: it gives the request its id, applies the input
guards (a block is refused before anything is sent) and returns the variables the model
may see. ``screen_output`` runs after it: output guards, hit counting, and handing the
request (texts redacted) to the monitor log and, when sampled, to online evaluation - a
queue put, so the reply is never delayed by either.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..aio import iterate_sync
from ..observe.record import new_id
from .guards import Guard, GuardHit, blocked

if TYPE_CHECKING:
    from ..monitor.online import OnlineMonitor
    from .reply import Reply
    from .reply_stream import ReplyStream


class Screening(Protocol):
    """What the guards and the monitor's hand-off read of a ``PromptService``."""

    name: str
    alias: str
    guard: Guard | None
    monitor: OnlineMonitor | None


@dataclass
class Screened:
    """One request after its input guards: its id, the variables to render, the hits."""

    request_id: str
    variables: dict[str, Any]
    tags: dict[str, str]
    hits: list[GuardHit] = field(default_factory=list)

    @property
    def ledger_tags(self) -> dict[str, str]:
        """The tags with the request id, so the ledger's record carries it."""
        return {**self.tags, "request_id": self.request_id}


def screen_input(service: Screening, variables: Mapping[str, Any],
                 tags: Mapping[str, str]) -> Screened:
    screened = Screened(new_id(), dict(variables), dict(tags))
    guard = service.guard
    if guard is None:
        return screened
    screened.variables, screened.hits = guard.scan_inputs(variables)
    refusal = blocked(screened.hits, screened.request_id)
    if refusal is not None:
        _finish(service, screened, None, "", screened.hits)
        raise refusal
    return screened


def screen_output(service: Screening, screened: Screened, reply: Reply) -> Reply:
    """The reply the application may see (``GuardBlocked`` when an output policy blocks)."""
    text, hits = reply.text, []
    if service.guard is not None:
        text, hits = service.guard.scan_output(reply.text)
    reply = dataclasses.replace(reply, text=text, request_id=screened.request_id)
    _finish(service, screened, reply, text, [*screened.hits, *hits])
    refusal = blocked(hits, screened.request_id)
    if refusal is not None:
        raise refusal
    return reply


def _finish(service: Screening, screened: Screened, reply: Reply | None, output: str,
            hits: list[GuardHit]) -> None:
    """Count the hits and queue the request's rows; nothing here waits for a store."""
    if hits and service.guard is not None:
        service.guard.notify(screened.tags, hits)
    monitor = service.monitor
    if service.guard is None and monitor is None:
        return
    from ..monitor.store import default_log

    now = time.time()
    store = default_log()
    common = {"request_id": screened.request_id, "ts": now,
              "application": screened.tags.get("application"), "prompt": service.name}
    for hit in hits:
        store.put("guard_hits", {**common, "guard": hit.guard, "stage": hit.stage,
                                 "action": hit.action, "reason": hit.reason})
    is_blocked = any(h.action == "block" for h in hits)
    sampled = (reply is not None and not is_blocked and monitor is not None
               and monitor.sampled())
    store.put("served_requests", {  # texts are redacted by the writer, off the request path
        **common, "user": screened.tags.get("user"), "alias": service.alias,
        "model": None if reply is None else reply.model,
        "prompt_version": None if reply is None else reply.version,
        "inputs": screened.variables, "output": output, "flagged": bool(hits),
        "blocked": is_blocked, "sampled": sampled}, redact=("inputs", "output"))
    if sampled and monitor is not None and reply is not None:
        monitor.submit(screened.request_id, reply.version, screened.variables, output)


class GuardedStream:
    """What ``PromptService.stream`` returns: a :class:`ReplyStream` whose finished reply
    carries its request id and passes the output guards. Pieces are held back until scanned
    when an output policy redacts or blocks, and flow as they come otherwise."""

    def __init__(self, service: Screening, screened: Screened, inner: ReplyStream) -> None:
        self._service, self._screened, self._inner = service, screened, inner
        self.reply: Reply | None = None

    @property
    def version(self) -> int:
        return self._inner.version

    @property
    def steps(self) -> dict[str, float]:
        return self._inner.steps

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        guard = self._service.guard
        hold = guard is not None and guard.holds_stream
        pieces = aiter(self._inner)
        try:
            async for piece in pieces:
                if not hold:
                    yield piece
        finally:  # a caller that stops reading cancels the model's stream now
            await pieces.aclose()  # type: ignore[attr-defined]
        assert self._inner.reply is not None  # set by an exhausted stream
        inner = dataclasses.replace(self._inner.reply, tags=self._screened.tags)
        self.reply = screen_output(self._service, self._screened, inner)
        if hold and self.reply.text:
            yield self.reply.text

    def __iter__(self) -> Iterator[str]:
        return iterate_sync(self.__aiter__)
