"""One model call as the usage ledger stores it, and how to read a time window."""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..errors import WorkbenchError

FORMAT_VERSION = 1


@dataclass(slots=True)
class UsageRecord:
    """Who made the call, for what, with which prompt and model, what it cost and how long.

    ``cost`` is USD actually spent: a response-cache hit spent nothing, so it is 0 with
    ``cache_hit`` set. ``priced`` is false when tokens were used but no price was known,
    so a cost of 0 is never mistaken for free. ``steps`` maps a step of the request
    (``render``, ``call``, ``total``, ...) to its seconds. ``model``/``provider`` answered;
    ``requested_model`` was asked first (they differ after a fallback). ``status`` is
    ``ok``, ``error``, ``cancelled`` (a stream its caller stopped reading) or ``refused``
    (before any call: a spent budget or a saturated model, named by ``error_type``).
    """

    application: str | None = None
    user: str | None = None
    request_type: str | None = None
    prompt: str | None = None
    prompt_version: int | None = None
    prompt_alias: str | None = None
    model: str | None = None
    provider: str | None = None
    requested_model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int | None = None  # provider prompt-cache tokens; None when not reported
    cost: float = 0.0
    priced: bool = True
    steps: dict[str, float] = field(default_factory=dict)
    ttft_s: float | None = None
    cache_hit: bool = False
    fallback: bool = False
    status: str = "ok"
    error_type: str | None = None
    route: str | None = None  # the route rule that chose the model ("<rule>:shadow": its shadow)
    fingerprint: str | None = None  # the same request (model, parameters, messages) twice
    request_id: str = ""
    ts: float = field(default_factory=time.time)
    call_id: str = field(default_factory=lambda: new_id())

    def __post_init__(self) -> None:
        if not self.request_id:
            self.request_id = self.call_id


def new_id() -> str:
    """32 hex digits, time first: unique, and appended in order to the store's index."""
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


def provider_of(model: str | None) -> str | None:
    """litellm's provider prefix (``openai/gpt-4o`` → ``openai``); bare names are OpenAI's."""
    if not model:
        return None
    return model.split("/", 1)[0] if "/" in model else "openai"


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def seconds(span: str | float | timedelta) -> float:
    """``"7d"``, ``"24h"``, ``"30m"``, a ``timedelta`` or seconds, as seconds."""
    if isinstance(span, timedelta):
        return span.total_seconds()
    if isinstance(span, int | float):
        return float(span)
    match = _SPAN.match(str(span))
    if not match:
        raise WorkbenchError(
            f"time span {span!r} is not understood; write a number and a unit, "
            "e.g. '30m', '24h', '7d' or '2w'")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def since_ts(since: str | float | timedelta | datetime | None, now: float | None = None
             ) -> float:
    """The start of a window as epoch seconds: a span back from now, or a datetime."""
    if since is None:
        return 0.0
    if isinstance(since, datetime):
        return since.timestamp()
    return (time.time() if now is None else now) - seconds(since)
