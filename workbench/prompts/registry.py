"""Prompt versions, aliases, approvals and their audit log — all in MLflow's prompt registry.

What the workbench writes here is plain MLflow: ``mlflow.genai.load_prompt("prompts:/name@alias")``
and the MLflow UI see the same template, and the model config travels with each version
(MLflow's prompt model config) so the serving side knows how to call it.

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
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import RegistryError
from ..gateway.config import ModelConfig
from ..settings import project_root, tracking_uri
from .templates import PromptTemplate, canonical_json

if TYPE_CHECKING:
    import pandas as pd

HASH_TAG = "workbench.content_hash"
VARIANT_TAG = "workbench.variant"
AUDIT_PREFIX = "workbench.audit."
POLICY_FILE = "workbench.yaml"
HISTORY_COLUMNS = ["at", "alias", "version", "action", "actor", "reason", "evidence"]
Action = Literal["request", "approval", "rejection", "promotion", "rollback"]
_MODEL_FIELDS = ("temperature", "max_tokens", "top_p", "top_k", "frequency_penalty",
                 "presence_penalty")
_SHARED_SCHEMES = ("http", "https", "postgresql", "mysql", "mssql", "databricks")


class ApprovalRequired(RegistryError):
    """The alias is protected: the move needs a request and someone else's approval."""


class ApprovalRefused(RegistryError):
    """The approval breaks the policy (for example, the requester approving their own request)."""


@dataclass(frozen=True)
class RegisteredPrompt:
    """A prompt version as the registry holds it: template, model config, tags."""

    name: str
    version: int
    template: PromptTemplate
    model: ModelConfig | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"prompts:/{self.name}/{self.version}"

    @property
    def promoted(self) -> bool:
        """True: what a promotion returns when the alias moved (a request returns False)."""
        return True


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Which aliases exist and which of them need a request plus a second person's approval.

    ``aliases`` guards against typos: a promotion to ``prodution`` would otherwise succeed
    silently while production keeps serving the old version.
    """

    aliases: tuple[str, ...] = ("staging", "production")
    protected: tuple[str, ...] = ("production",)
    distinct_approver: bool = True
    require_evidence: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "protected", tuple(self.protected))
        stray = sorted(set(self.protected) - set(self.aliases))
        if stray:
            raise RegistryError(
                f"protected aliases {stray} are not in aliases {list(self.aliases)}")

    @classmethod
    def unprotected(cls, **changes: Any) -> Policy:
        """Every alias moves in one step: a personal store has no second person to ask."""
        return cls(**{"protected": (), **changes})

    def requires_approval(self, alias: str) -> bool:
        return alias in self.protected

    def check_alias(self, alias: str) -> None:
        if alias not in self.aliases:
            raise RegistryError(
                f"alias {alias!r} is not one of this project's aliases {list(self.aliases)}; "
                f"add it under registry.aliases in {POLICY_FILE} if it is meant")


def load_policy(start: str | Path | None = None, *, uri: str | None = None) -> Policy:
    """The project's policy: the ``registry:`` section of ``<project>/workbench.yaml``.

    Without one, a shared store (a tracking server or a database server) protects
    ``production``, and a personal SQLite store on a laptop does not: there the user is the
    only person who could approve, so asking for a second one would only get in the way.
    """
    path = project_root(start) / POLICY_FILE
    if path.is_file():
        from ..files import load_yaml

        data = load_yaml(path) or {}  # a repeated `protected:` must not silently win
        section = data.get("registry") if isinstance(data, dict) else None
        if section is not None:
            return _policy_from(path, section)
    uri = uri or tracking_uri(start)
    scheme = uri.split(":", 1)[0].split("+")[0]
    return Policy() if scheme in _SHARED_SCHEMES else Policy.unprotected()


def _policy_from(path: Path, section: Any) -> Policy:
    if not isinstance(section, dict):
        raise RegistryError(f"{path}: registry: must be a mapping (aliases, protected, ...)")
    known = {"aliases", "protected", "distinct_approver", "require_evidence"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise RegistryError(f"{path}: registry: unknown keys {unknown}; use {sorted(known)}")
    values = dict(section)
    for key in ("aliases", "protected"):
        if key in values:
            value = values[key]
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RegistryError(f"{path}: registry.{key}: a list of alias names")
            values[key] = tuple(value)
    try:
        return Policy(**values)
    except RegistryError as exc:
        raise RegistryError(f"{path}: registry: {exc}") from exc


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


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    alias: str
    version: int
    action: Action
    actor: str
    reason: str | None
    evidence: dict[str, str]


def client(uri: str | None = None) -> Any:
    """A client on the workbench's store; MLflow's global URIs follow, because some registry
    calls (linking a prompt to a run) read the global store rather than the client's."""
    import mlflow
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
    if mlflow.get_registry_uri() != uri:
        mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def content_hash(template: PromptTemplate, model: ModelConfig | None) -> str:
    """Template and model config together: either changing makes a new version."""
    payload = {"template": template.template,
               "model": model.model_dump(mode="json") if model else None}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def register_version(name: str, template: PromptTemplate, model: ModelConfig | None = None, *,
                     tags: dict[str, str] | None = None, commit_message: str | None = None,
                     mlflow_client: Any = None) -> tuple[int, bool]:
    """Register the template unless an identical version exists; returns (version, created).

    Two processes registering a new prompt at once both check, both find no prompt and
    both create it; MLflow refuses the second creation, which then tries once more. When
    both added a version of the same content, both return the lower one.
    """
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    digest = content_hash(template, model)
    for attempt in (1, 2):
        for existing in _versions(c, name):
            if existing.tags.get(HASH_TAG) == digest:
                return int(existing.version), False
        try:
            version = c.register_prompt(
                name=name,
                template=template.template,
                commit_message=commit_message or template.description or None,
                tags={HASH_TAG: digest, **(tags or {})},
                model_config=to_mlflow_model_config(model) if model else None,
            )
        except MlflowException as exc:
            if attempt == 2 or exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            continue
        ours = int(version.version)
        first = min((int(v.version) for v in _versions(c, name)
                     if v.tags.get(HASH_TAG) == digest), default=ours)
        return first, first == ours
    raise AssertionError("unreachable")  # the second attempt returns or raises


def _versions(c: Any, name: str) -> list[Any]:
    from mlflow.exceptions import MlflowException

    try:
        found, token = [], None
        while True:
            page = c.search_prompt_versions(name, max_results=100, page_token=token)
            found.extend(page)
            token = getattr(page, "token", None)
            if not token:
                return found
    except MlflowException:
        return []  # no such prompt yet


def to_mlflow_model_config(model: ModelConfig) -> dict[str, Any]:
    """Standard fields where MLflow has them; the litellm specifics in ``extra_params``.

    Every other ``ModelConfig`` field (timeout, retries, fallbacks, prices, limits...) goes
    into ``extra_params`` by name, so a field added to the config travels without a change here.
    """
    params = dict(model.params)
    config: dict[str, Any] = {"provider": model.provider, "model_name": model.model}
    for key in _MODEL_FIELDS:
        if key in params:
            config[key] = params.pop(key)
    if "stop" in params:
        stop = params.pop("stop")
        config["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    rest = model.model_dump(mode="json", exclude={"model", "params"})
    config["extra_params"] = {"params": params,
                              **{k: v for k, v in rest.items() if v not in (None, [], {})}}
    if "/" not in model.model:  # a bare name is litellm's to resolve, not always openai's
        config["extra_params"]["model"] = model.model
    return config


def from_mlflow_model_config(config: dict[str, Any] | None) -> ModelConfig | None:
    """Inverse of ``to_mlflow_model_config``; also reads configs written by plain MLflow."""
    if not config or not config.get("model_name"):
        return None
    extra = dict(config.get("extra_params") or {})
    params = dict(extra.pop("params", {}) or {})
    for key in _MODEL_FIELDS:
        if config.get(key) is not None:
            params[key] = config[key]
    if config.get("stop_sequences"):
        params["stop"] = list(config["stop_sequences"])
    exact = extra.pop("model", None)
    model = exact or config["model_name"]
    provider = config.get("provider")
    if provider and "/" not in model and not exact:
        model = f"{provider}/{model}"
    fields = set(ModelConfig.model_fields) - {"model", "params"}
    known = {k: extra.pop(k) for k in list(extra) if k in fields}
    params.update(extra)  # anything else plain MLflow put there is a call parameter
    return ModelConfig(model=model, params=params, **known)


def load(name: str, *, alias: str | None = None, version: int | None = None,
         cache_ttl_seconds: float | None = None, mlflow_client: Any = None) -> RegisteredPrompt:
    """Read one version (by alias or number) with its template and model config."""
    from mlflow.exceptions import MlflowException

    if (alias is None) == (version is None):
        raise RegistryError("give exactly one of alias= or version=")
    c = mlflow_client or client()
    uri = f"prompts:/{name}@{alias}" if alias else f"prompts:/{name}/{version}"
    try:
        found = c.load_prompt(uri, cache_ttl_seconds=cache_ttl_seconds)
    except MlflowException as exc:
        raise RegistryError(f"{uri}: {exc.message}") from exc
    if found is None:
        raise RegistryError(f"{uri} does not exist")
    return _to_registered(found)


def _to_registered(found: Any) -> RegisteredPrompt:
    return RegisteredPrompt(
        name=found.name,
        version=int(found.version),
        template=PromptTemplate(found.template, name=found.name),
        model=from_mlflow_model_config(found.model_config),
        tags=dict(found.tags or {}),
    )


def alias_version(name: str, alias: str, *, mlflow_client: Any = None) -> int | None:
    """The version an alias points at, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    try:
        return int(c.get_prompt_version_by_alias(name, alias).version)
    except MlflowException:
        return None


# -- promotion under a policy ------------------------------------------------------------


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
    event = _record(c, name, int(version), alias, "request", requester or getpass.getuser(),
                    reason, evidence)
    _review_tag(c, name, int(version), alias, event, "pending: requested")
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
    event = _record(c, name, request.version, alias, "approval", approver, reason,
                    request.evidence)
    _review_tag(c, name, request.version, alias, event, "approved")
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
    event = _record(c, name, request.version, alias, "rejection", actor, reason, request.evidence)
    _review_tag(c, name, request.version, alias, event, "rejected")
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
    stack: list[int] = []
    for event in _events(c, name):
        if event.alias != alias:
            continue
        if event.action == "promotion":
            stack.append(event.version)
        elif event.action == "rollback" and stack:
            stack.pop()
    current = alias_version(name, alias, mlflow_client=c)
    if stack and current != stack[-1]:
        target = stack[-1]  # the alias was moved outside the workbench: back to the last recorded
    elif len(stack) >= 2:
        target = stack[-2]
    else:
        raise RegistryError(
            f"@{alias} of {name!r} has no earlier recorded version to roll back to "
            "(see `workbench history " + name + "`)")
    return _move(c, name, target, alias, action="rollback", actor=actor or getpass.getuser(),
                 reason=reason, evidence={"from_version": str(current)})


def pending_requests(name: str, alias: str | None = None, *,
                     mlflow_client: Any = None) -> list[PromotionRequest]:
    """Requests nobody has approved or rejected yet, oldest first."""
    c = mlflow_client or client()
    latest: dict[tuple[str, int], tuple[AuditEvent, AuditEvent]] = {}
    for event in _events(c, name):
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
            for e in _events(c, name)]
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
    moves = [e for e in _events(c, name)
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
    event = _record(c, name, version, alias, action, actor, reason, evidence)
    verb = "promoted" if action == "promotion" else "rolled_back"
    prefix = f"workbench.{verb}.{alias}"
    _tag_version(c, name, version, prefix,
                 {"by": actor, "at": event.at.isoformat(timespec="seconds"), "reason": reason,
                  **evidence})
    return load(name, version=version, mlflow_client=c)


def _record(c: Any, name: str, version: int, alias: str, action: Action, actor: str,
            reason: str | None, evidence: dict[str, str]) -> AuditEvent:
    from mlflow.exceptions import MlflowException

    event = AuditEvent(at=datetime.now(UTC), alias=alias, version=version, action=action,
                       actor=actor, reason=reason, evidence=dict(evidence))
    payload = {"v": 1, "at": event.at.isoformat(), "alias": alias, "version": version,
               "action": action, "actor": actor, "reason": reason, "evidence": event.evidence}
    key = f"{AUDIT_PREFIX}{time.time_ns():020d}.{secrets.token_hex(3)}"
    try:
        c.set_prompt_tag(name, key, json.dumps(payload, ensure_ascii=False))
    except MlflowException as exc:
        raise RegistryError(f"cannot record the {action} of {name}: {exc.message}") from exc
    return event


def _review_tag(c: Any, name: str, version: int, alias: str, event: AuditEvent,
                state: str) -> None:
    # One tag per step (each tag is a round trip to a tracking server); the details are in
    # the audit log.
    text = f"{state} by {event.actor} at {event.at.isoformat(timespec='seconds')}"
    if event.reason and event.action == "rejection":
        text += f": {event.reason}"
    c.set_prompt_version_tag(name, version, f"workbench.review.{alias}", text)


def _tag_version(c: Any, name: str, version: int, prefix: str, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if value is not None:
            c.set_prompt_version_tag(name, version, f"{prefix}.{key}", str(value))


def _events(c: Any, name: str) -> list[AuditEvent]:
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
