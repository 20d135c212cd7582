"""Prompt versions, aliases, approvals and their audit log — all in MLflow's prompt registry.

What the workbench writes here is plain MLflow: ``mlflow.genai.load_prompt("prompts:/name@alias")``
and the MLflow UI see the same template, and the model config travels with each version
(MLflow's prompt model config) so the serving side knows how to call it. Registering and
loading versions is :mod:`workbench.prompts.versions`, the policy
:mod:`workbench.prompts.policy`, the audit log's records :mod:`workbench.prompts.audit`;
this module moves aliases and names the whole API.

MLflow has aliases and tags but no approval workflow, so the workflow is kept in tags:

* each step (request, approval, rejection, promotion, rollback) is one *prompt-level* tag
  ``workbench.audit.<time_ns>.<random>`` holding a small JSON record. One new key per event
  makes the log append-only with no read-modify-write race between two people acting at once
  (a single JSON list in one tag would lose one of two concurrent writes), and the keys sort
  in time order;
* the *version* tags (``workbench.review.<alias>``: "pending: requested by alice at ...",
  "approved by bob at ...", and ``workbench.promoted.<alias>.*``) show the latest state of
  each version in the MLflow UI.

Which aliases need a second person is a :class:`Policy`, read from the project's
``workbench.yaml`` (see :func:`load_policy`) or passed in.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ..errors import RegistryError
from ..settings import tracking_uri
from .audit import (
    AUDIT_PREFIX,
    Action,
    AuditEvent,
    read_events,
    record_event,
    review_tag,
    tag_version,
)
from .policy import POLICY_FILE, Policy, load_policy
from .versions import (
    HASH_TAG,
    VARIANT_TAG,
    RegisteredPrompt,
    alias_version,
    client,
    content_hash,
    from_mlflow_model_config,
    load,
    register_version,
    to_mlflow_model_config,
)

if TYPE_CHECKING:
    import pandas as pd

# `from workbench import registry` is the registry's API: moving aliases (here), versions
# (versions.py) and the policy (policy.py).
__all__ = [
    "AUDIT_PREFIX", "HASH_TAG", "HISTORY_COLUMNS", "POLICY_FILE", "VARIANT_TAG", "Action",
    "ApprovalRefused", "ApprovalRequired", "AuditEvent", "Policy", "PromotionRequest",
    "RegisteredPrompt", "alias_version", "approve", "client", "content_hash",
    "from_mlflow_model_config", "history", "load", "load_policy", "pending_requests",
    "promote", "promote_or_request", "register_version", "reject", "request_promotion",
    "rollback", "rollback_target", "to_mlflow_model_config",
]

HISTORY_COLUMNS = ["at", "alias", "version", "action", "actor", "reason", "evidence"]


class ApprovalRequired(RegistryError):
    """The alias is protected: the move needs a request and someone else's approval."""


class ApprovalRefused(RegistryError):
    """The approval breaks the policy (for example, the requester approving their own request)."""


@dataclass(frozen=True)
class PromotionRequest:
    """A recorded request to move a protected alias; it waits for someone else's approval."""

    name: str
    version: int
    alias: str
    requester: str
    at: datetime
    reason: str | None = None
    evidence: dict[str, str] = field(default_factory=dict)
    status: Literal["pending", "approved", "rejected"] = "pending"

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}"

    @property
    def promoted(self) -> bool:
        return False

    def __str__(self) -> str:
        head = (f"{self.uri} → @{self.alias}: promotion requested by {self.requester}, "
                f"{self.status}")
        if self.status != "pending":
            return head
        return (f"{head}; @{self.alias} is protected and has not moved. Someone else approves "
                f"with `workbench approve {self.name} --alias {self.alias} --version "
                f"{self.version} --approver NAME` or "
                f"workbench.registry.approve({self.name!r}, {self.alias!r}, approver=...)")


def promote(name: str, version: int, alias: str = "production", *, approver: str | None = None,
            reason: str | None = None, evidence: dict[str, str] | None = None,
            policy: Policy | None = None, mlflow_client: Any = None) -> RegisteredPrompt:
    """Point ``alias`` at ``version`` in one step and record who did it, when and on what evidence.

    A protected alias refuses this with :class:`ApprovalRequired`; use
    :func:`promote_or_request` (or :func:`request_promotion` and :func:`approve`) for it.
    """
    c = mlflow_client or client()
    policy = policy or _policy_for(c)
    policy.check_alias(alias)
    already = _already_at(c, name, int(version), alias)
    if already is not None:
        return already
    if policy.requires_approval(alias):
        raise ApprovalRequired(
            f"@{alias} is protected: request the promotion (`workbench request {name} "
            f"--version {version} --alias {alias}` or registry.request_promotion) and have "
            "someone else approve it")
    return _move(c, name, int(version), alias, action="promotion",
                 actor=approver or getpass.getuser(), reason=reason, evidence=evidence or {})


def promote_or_request(name: str, version: int, alias: str = "production", *,
                       actor: str | None = None, reason: str | None = None,
                       evidence: dict[str, str] | None = None, policy: Policy | None = None,
                       mlflow_client: Any = None) -> RegisteredPrompt | PromotionRequest:
    """Move the alias when the policy allows it, else record a request for someone to approve.

    The result's ``promoted`` says which happened; a request's ``str()`` says what to do next.
    """
    c = mlflow_client or client()
    policy = policy or _policy_for(c)
    policy.check_alias(alias)
    already = _already_at(c, name, int(version), alias)
    if already is not None:
        return already
    if policy.requires_approval(alias):
        return request_promotion(name, version, alias, requester=actor, reason=reason,
                                 evidence=evidence, policy=policy, mlflow_client=c)
    return promote(name, version, alias, approver=actor, reason=reason, evidence=evidence,
                   policy=policy, mlflow_client=c)


def request_promotion(name: str, version: int, alias: str = "production", *,
                      requester: str | None = None, reason: str | None = None,
                      evidence: dict[str, str] | None = None, policy: Policy | None = None,
                      mlflow_client: Any = None) -> PromotionRequest:
    """Record a request to move ``alias`` to ``version``; the alias does not move yet."""
    c = mlflow_client or client()
    policy = policy or _policy_for(c)
    policy.check_alias(alias)
    evidence = {k: str(v) for k, v in (evidence or {}).items()}
    if policy.require_evidence and "run_id" not in evidence:
        raise RegistryError(
            f"@{alias} promotions need evidence: promote from a comparison report "
            "(workbench.promote(report, ...)) or pass evidence={'run_id': ...}")
    load(name, version=int(version), mlflow_client=c)  # the version must exist
    event = record_event(c, name, int(version), alias, "request",
                         requester or getpass.getuser(), reason, evidence)
    review_tag(c, name, int(version), alias, event, "pending: requested")
    return _as_request(name, event, "pending")


def approve(name: str, alias: str = "production", *, approver: str | None = None,
            version: int | None = None, reason: str | None = None, policy: Policy | None = None,
            mlflow_client: Any = None) -> RegisteredPrompt:
    """Approve the pending request for ``alias`` and move the alias, both recorded."""
    c = mlflow_client or client()
    policy = policy or _policy_for(c)
    approver = approver or getpass.getuser()
    request = _the_pending(c, name, alias, version)
    if policy.distinct_approver and approver == request.requester:
        raise ApprovalRefused(
            f"{approver} requested prompts:/{name}/{request.version} → @{alias}; "
            "a different person must approve it")
    event = record_event(c, name, request.version, alias, "approval", approver, reason,
                         request.evidence)
    review_tag(c, name, request.version, alias, event, "approved")
    because = "; ".join(r for r in (request.reason, reason) if r) or None
    return _move(c, name, request.version, alias, action="promotion", actor=approver,
                 reason=because, evidence={**request.evidence, "requested_by": request.requester})


def reject(name: str, alias: str = "production", *, reason: str, approver: str | None = None,
           version: int | None = None, mlflow_client: Any = None) -> PromotionRequest:
    """Turn down the pending request for ``alias``; the reason is required and recorded."""
    if not reason or not reason.strip():
        raise RegistryError("a rejection needs a reason, so the requester knows what to fix")
    c = mlflow_client or client()
    request = _the_pending(c, name, alias, version)
    actor = approver or getpass.getuser()
    event = record_event(c, name, request.version, alias, "rejection", actor, reason,
                         request.evidence)
    review_tag(c, name, request.version, alias, event, "rejected")
    return PromotionRequest(name=name, version=request.version, alias=alias,
                            requester=request.requester, at=request.at, reason=request.reason,
                            evidence=request.evidence, status="rejected")


def rollback(name: str, alias: str = "production", *, actor: str | None = None,
             reason: str | None = None, mlflow_client: Any = None) -> RegisteredPrompt:
    """Return ``alias`` to the version it held before, in one recorded step.

    No approval: the target already passed the policy when it was promoted, and a rollback
    is what someone does when the current version misbehaves. Rolling back twice goes two
    versions back (the alias's moves are a stack).
    """
    c = mlflow_client or client()
    current, target = rollback_target(name, alias, mlflow_client=c)
    return _move(c, name, target, alias, action="rollback", actor=actor or getpass.getuser(),
                 reason=reason, evidence={"from_version": str(current)})


def rollback_target(name: str, alias: str = "production", *,
                    mlflow_client: Any = None) -> tuple[int | None, int]:
    """(the version ``alias`` holds now, the one :func:`rollback` would return it to).

    Raises ``RegistryError`` when there is no earlier recorded version.
    """
    c = mlflow_client or client()
    stack: list[int] = []
    for event in read_events(c, name):
        if event.alias != alias:
            continue
        if event.action == "promotion":
            stack.append(event.version)
        elif event.action == "rollback" and stack:
            stack.pop()
    current = alias_version(name, alias, mlflow_client=c)
    if stack and current != stack[-1]:
        return current, stack[-1]  # moved outside the workbench: back to the last recorded
    if len(stack) >= 2:
        return current, stack[-2]
    raise RegistryError(
        f"@{alias} of {name!r} has no earlier recorded version to roll back to "
        "(see `workbench history " + name + "`)")


def pending_requests(name: str, alias: str | None = None, *,
                     mlflow_client: Any = None) -> list[PromotionRequest]:
    """Requests nobody has approved or rejected yet, oldest first."""
    c = mlflow_client or client()
    latest: dict[tuple[str, int], tuple[AuditEvent, AuditEvent]] = {}
    for event in read_events(c, name):
        if alias is not None and event.alias != alias:
            continue
        key = (event.alias, event.version)
        if event.action == "request":
            latest[key] = (event, event)
        elif event.action in ("approval", "rejection") and key in latest:
            latest[key] = (latest[key][0], event)
    return [_as_request(name, req, "pending") for req, last in latest.values()
            if last.action == "request"]


def history(name: str, *, mlflow_client: Any = None) -> pd.DataFrame:
    """The audit log of ``name``: one row per request, approval, rejection, promotion, rollback.

    Columns ``at`` (UTC), ``alias``, ``version``, ``action``, ``actor``, ``reason``,
    ``evidence`` (a dict: run id, verdict, variant, ...). Rows with action ``promotion`` or
    ``rollback`` are the alias moves: which version held each alias from when.
    """
    import pandas as pd

    c = mlflow_client or client()
    rows = [{"at": e.at, "alias": e.alias, "version": e.version, "action": e.action,
             "actor": e.actor, "reason": e.reason, "evidence": e.evidence}
            for e in read_events(c, name)]
    frame = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["version"] = frame["version"].astype("int64")
    frame["reason"] = pd.Series([r["reason"] for r in rows], dtype=object)  # None, not NaN
    return frame


# -- records -------------------------------------------------------------------------------


def _already_at(c: Any, name: str, version: int, alias: str) -> RegisteredPrompt | None:
    """The version, when ``alias`` holds it by a recorded move: promoting it again changes
    nothing, so it adds nothing to the audit log (nor a request to approve a no-op)."""
    if alias_version(name, alias, mlflow_client=c) != version:
        return None
    moves = [e for e in read_events(c, name)
             if e.alias == alias and e.action in ("promotion", "rollback")]
    if not moves or moves[-1].version != version:
        return None  # set outside the workbench: the promotion puts it on the record
    return load(name, version=version, mlflow_client=c)


def _policy_for(c: Any) -> Policy:
    return load_policy(uri=getattr(c, "_registry_uri", None) or tracking_uri())


def _move(c: Any, name: str, version: int, alias: str, *, action: Action, actor: str,
          reason: str | None, evidence: dict[str, str]) -> RegisteredPrompt:
    from mlflow.exceptions import MlflowException

    try:
        c.set_prompt_alias(name, alias, version)
    except MlflowException as exc:
        raise RegistryError(f"cannot promote {name} v{version} to @{alias}: {exc.message}") from exc
    evidence = {k: str(v) for k, v in evidence.items()}
    event = record_event(c, name, version, alias, action, actor, reason, evidence)
    verb = "promoted" if action == "promotion" else "rolled_back"
    prefix = f"workbench.{verb}.{alias}"
    tag_version(c, name, version, prefix,
                 {"by": actor, "at": event.at.isoformat(timespec="seconds"), "reason": reason,
                  **event.evidence})
    return load(name, version=version, mlflow_client=c)


def _as_request(name: str, event: AuditEvent, status: Any) -> PromotionRequest:
    return PromotionRequest(name=name, version=event.version, alias=event.alias,
                            requester=event.actor, at=event.at, reason=event.reason,
                            evidence=event.evidence, status=status)


def _the_pending(c: Any, name: str, alias: str, version: int | None) -> PromotionRequest:
    pending = [r for r in pending_requests(name, alias, mlflow_client=c)
               if version is None or r.version == int(version)]
    if not pending:
        which = f"v{version} → " if version is not None else ""
        raise RegistryError(f"no pending request for {which}@{alias} of {name!r}; "
                            f"request one first (`workbench request {name} --version N`)")
    if len(pending) > 1:
        raise RegistryError(f"several pending requests for @{alias} of {name!r} "
                            f"(versions {[r.version for r in pending]}); name one with version=")
    return pending[0]
