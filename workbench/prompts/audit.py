"""The audit log of alias moves, kept in MLflow prompt tags (see :mod:`.registry`).

Each step is one prompt-level tag ``workbench.audit.<time_ns>.<random>`` holding a small
JSON record, so the log is append-only and sorts in time order; version tags show the
latest state of each version in the MLflow UI.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ..errors import RegistryError

AUDIT_PREFIX = "workbench.audit."
MAX_VALUE = 240  # an audit value stays one readable line in the MLflow UI's tag list
Action = Literal["request", "approval", "rejection", "promotion", "rollback"]


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    alias: str
    version: int
    action: Action
    actor: str
    reason: str | None
    evidence: dict[str, str]


def record_event(c: Any, name: str, version: int, alias: str, action: Action, actor: str,
                 reason: str | None, evidence: dict[str, str]) -> AuditEvent:
    from mlflow.exceptions import MlflowException

    event = AuditEvent(at=datetime.now(UTC), alias=alias, version=version, action=action,
                       actor=actor, reason=reason,
                       evidence={k: first_line(v) or "" for k, v in evidence.items()})
    payload = {"v": 1, "at": event.at.isoformat(timespec="seconds"), "alias": alias,
               "version": version, "action": action, "actor": actor, "reason": event.reason,
               "evidence": event.evidence}
    key = f"{AUDIT_PREFIX}{time.time_ns():020d}.{secrets.token_hex(3)}"
    try:
        c.set_prompt_tag(name, key, json.dumps(payload, ensure_ascii=False,
                                               separators=(", ", ": ")))
    except MlflowException as exc:
        raise RegistryError(f"cannot record the {action} of {name}: {exc.message}") from exc
    return event


def first_line(text: str | None) -> str | None:
    """The first line of an evidence value, at most ``MAX_VALUE`` characters: a verdict's
    details stay in the run's report, not in every audit record and version tag."""
    if text is None:
        return None
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first if len(first) <= MAX_VALUE else first[:MAX_VALUE - 1] + "…"


def review_tag(c: Any, name: str, version: int, alias: str, event: AuditEvent,
                state: str) -> None:
    # One tag per step (each tag is a round trip to a tracking server); the details are in
    # the audit log.
    text = f"{state} by {event.actor} at {event.at.isoformat(timespec='seconds')}"
    if event.reason and event.action == "rejection":
        text += f": {event.reason}"
    c.set_prompt_version_tag(name, version, f"workbench.review.{alias}", text)


def tag_version(c: Any, name: str, version: int, prefix: str, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if value is not None:
            c.set_prompt_version_tag(name, version, f"{prefix}.{key}", str(value))


def read_events(c: Any, name: str) -> list[AuditEvent]:
    from mlflow.exceptions import MlflowException

    try:
        prompt = c.get_prompt(name)
    except MlflowException as exc:
        raise RegistryError(f"prompt {name!r}: {exc.message}") from exc
    if prompt is None:
        raise RegistryError(f"no prompt named {name!r} in the registry")
    events = []
    for key in sorted(k for k in prompt.tags if k.startswith(AUDIT_PREFIX)):
        data = json.loads(prompt.tags[key])
        events.append(AuditEvent(at=datetime.fromisoformat(data["at"]), alias=data["alias"],
                                 version=int(data["version"]), action=data["action"],
                                 actor=data["actor"], reason=data.get("reason"),
                                 evidence=dict(data.get("evidence") or {})))
    return events
