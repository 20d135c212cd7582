"""Prompt versions and aliases in MLflow's own prompt registry — never a second registry.

What the workbench writes here is plain MLflow: ``mlflow.genai.load_prompt("prompts:/name@alias")``
and the MLflow UI see the same template, and the model config travels with each version
(MLflow's prompt model config) so the serving side knows how to call it.
"""

from __future__ import annotations

import getpass
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import RegistryError
from .gateway import ModelConfig
from .prompts import PromptTemplate, canonical_json
from .settings import tracking_uri

HASH_TAG = "workbench.content_hash"
VARIANT_TAG = "workbench.variant"
_MODEL_FIELDS = ("temperature", "max_tokens", "top_p", "top_k", "frequency_penalty",
                 "presence_penalty")


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
    """Register the template unless an identical version exists; returns (version, created)."""
    c = mlflow_client or client()
    digest = content_hash(template, model)
    for existing in _versions(c, name):
        if existing.tags.get(HASH_TAG) == digest:
            return int(existing.version), False
    all_tags = {HASH_TAG: digest, **(tags or {})}
    version = c.register_prompt(
        name=name,
        template=template.template,
        commit_message=commit_message or template.description or None,
        tags=all_tags,
        model_config=to_mlflow_model_config(model) if model else None,
    )
    return int(version.version), True


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
    """Standard fields where MLflow has them; the litellm specifics in ``extra_params``."""
    params = dict(model.params)
    config: dict[str, Any] = {"provider": model.provider, "model_name": model.model}
    for key in _MODEL_FIELDS:
        if key in params:
            config[key] = params.pop(key)
    if "stop" in params:
        stop = params.pop("stop")
        config["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    extra = {"params": params, "timeout": model.timeout, "num_retries": model.num_retries}
    if model.api_base:
        extra["api_base"] = model.api_base
    if model.api_key_env:
        extra["api_key_env"] = model.api_key_env
    config["extra_params"] = extra
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
    model = config["model_name"]
    provider = config.get("provider")
    if provider and "/" not in model:
        model = f"{provider}/{model}"
    known = {k: extra.pop(k) for k in ("api_base", "api_key_env", "timeout", "num_retries")
             if k in extra}
    params.update(extra)
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


def promote(name: str, version: int, alias: str = "production", *, approver: str | None = None,
            reason: str | None = None, evidence: dict[str, str] | None = None,
            mlflow_client: Any = None) -> RegisteredPrompt:
    """Point ``alias`` at ``version`` and record who did it, when and on what evidence."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    try:
        c.set_prompt_alias(name, alias, int(version))
    except MlflowException as exc:
        raise RegistryError(f"cannot promote {name} v{version} to @{alias}: {exc.message}") from exc
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    record = {
        f"workbench.promoted.{alias}.by": approver or getpass.getuser(),
        f"workbench.promoted.{alias}.at": stamp,
    }
    if reason:
        record[f"workbench.promoted.{alias}.reason"] = reason
    for key, value in (evidence or {}).items():
        record[f"workbench.promoted.{alias}.{key}"] = str(value)
    for key, value in record.items():
        c.set_prompt_version_tag(name, int(version), key, value)
    return load(name, version=int(version), mlflow_client=c)


def alias_version(name: str, alias: str, *, mlflow_client: Any = None) -> int | None:
    """The version an alias points at, or None when the alias is not set."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    try:
        return int(c.get_prompt_version_by_alias(name, alias).version)
    except MlflowException:
        return None
