"""Prompt versions and aliases in MLflow's prompt registry: register (deduplicated by
content), load, and the model config that travels with each version.

What the workbench writes here is plain MLflow: ``mlflow.genai.load_prompt("prompts:/name@alias")``
and the MLflow UI see the same template and model config. Moving an alias, with its policy,
requests and audit log, is :mod:`workbench.prompts.registry`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..canonical import canonical_json
from ..errors import RegistryError
from ..gateway.config import ModelConfig
from ..settings import tracking_uri
from .templates import PromptTemplate

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

    @property
    def promoted(self) -> bool:
        """True: what a promotion returns when the alias moved (a request returns False)."""
        return True



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
                _add_variant(c, name, existing, (tags or {}).get(VARIANT_TAG))
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


def _add_variant(c: Any, name: str, version: Any, variant: str | None) -> None:
    """A version reused under another variant name lists every name that used it, so the
    MLflow UI's version list says which variant each version is."""
    if not variant:
        return
    names = [n for n in (version.tags.get(VARIANT_TAG) or "").split(", ") if n]
    if variant not in names:
        c.set_prompt_version_tag(name, version.version, VARIANT_TAG, ", ".join([*names, variant]))


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

