"""Which aliases a project has and which need a request plus a second person's approval:
the ``registry:`` section of ``workbench.yaml``, or a default that follows the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RegistryError
from ..settings import project_root, tracking_uri

POLICY_FILE = "workbench.yaml"
_SHARED_SCHEMES = ("http", "https", "postgresql", "mysql", "mssql", "databricks")


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
