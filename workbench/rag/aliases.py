"""Index aliases (``kb@production``) through the prompts' request → approve → audit workflow.

``workbench.prompts.registry`` moves aliases and keeps their audit log through the few
MLflow client calls it makes (aliases, prompt tags, version tags, loading a version).
``IndexRegistry`` answers those same calls for an index: the aliases and the audit log are
tags of the index's MLflow experiment (``rag-<name>``), so a team's tracking server shares
them and the policy in ``workbench.yaml`` (protected aliases, a distinct approver) applies
to indexes exactly as to prompts.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..settings import tracking_uri
from .errors import RagError
from .store import default_root, versions

ALIAS_TAG = "workbench.rag.alias."


def number(version: str | int) -> int:
    """``v3`` or ``3`` as 3: the registry counts versions as integers."""
    text = str(version)
    return int(text[1:] if text.startswith("v") else text)


class IndexRegistry:
    """The subset of ``MlflowClient`` that ``prompts.registry`` uses, for index versions."""

    def __init__(self, root: str | Path | None = None, uri: str | None = None) -> None:
        from mlflow import MlflowClient

        self.root = Path(root) if root else default_root()
        self._registry_uri = uri or tracking_uri()  # read by the registry's policy lookup
        self.client = MlflowClient(tracking_uri=self._registry_uri)

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(f"rag-{name}")
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(f"rag-{name}")

    def _tags(self, name: str) -> dict[str, str]:
        found = self.client.get_experiment_by_name(f"rag-{name}")  # reading creates nothing
        return dict(found.tags) if found is not None else {}

    def _check_version(self, name: str, version: int) -> None:
        known = versions(self.root, name)
        if f"v{version}" not in known:
            raise RagError(f"index {name!r} has no version v{version} under {self.root}; "
                           f"it has {', '.join(known) or 'none'}")

    # -- the calls prompts.registry makes ---------------------------------------------------
    def get_prompt(self, name: str) -> Any:
        return SimpleNamespace(name=name, tags=self._tags(name))

    def set_prompt_tag(self, name: str, key: str, value: str) -> None:
        self.client.set_experiment_tag(self._experiment(name), key, value)

    def set_prompt_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self.client.set_experiment_tag(self._experiment(name), f"v{version}.{key}", value)

    def set_prompt_alias(self, name: str, alias: str, version: int) -> None:
        self._check_version(name, int(version))
        self.client.set_experiment_tag(self._experiment(name), ALIAS_TAG + alias,
                                       str(int(version)))

    def get_prompt_version_by_alias(self, name: str, alias: str) -> Any:
        from mlflow.exceptions import MlflowException

        value = self._tags(name).get(ALIAS_TAG + alias)
        if value is None:
            raise MlflowException(f"index {name!r} has no alias {alias!r}")
        return SimpleNamespace(version=int(value))

    def load_prompt(self, uri: str, cache_ttl_seconds: Any = None) -> Any:
        name, _, version = uri.removeprefix("prompts:/").rpartition("/")
        self._check_version(name, int(version))
        return SimpleNamespace(name=name, version=int(version), model_config=None, tags={},
                               template=f"index {name}@v{version}")

    # -- for readers of index aliases -------------------------------------------------------
    def alias_version(self, name: str, alias: str) -> str | None:
        """``v3`` for ``kb@production``, or None when the alias is not set."""
        value = self._tags(name).get(ALIAS_TAG + alias)
        return f"v{value}" if value is not None else None


def resolve_alias(ref: str, *, root: str | Path | None = None, uri: str | None = None) -> str:
    """``kb@production`` as ``kb@v3``; ``kb``, ``kb@v3`` and ``kb@latest`` as they are."""
    name, _, version = ref.partition("@")
    if not version or version == "latest" or (version[:1] == "v" and version[1:].isdigit()):
        return ref
    found = IndexRegistry(root, uri).alias_version(name, version)
    if found is None:
        raise RagError(f"index {name!r} has no alias {version!r}; set it with "
                       f"`workbench rag refresh {name} --alias {version}`")
    return f"{name}@{found}"
