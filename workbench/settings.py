"""Where the workbench keeps things: the MLflow store and its own cache.

Notebooks run from ``notebooks/`` and the CLI from the repository root; both must find the
same ``mlruns/``, so the project root is the nearest folder (upwards) that has one.
"""

from __future__ import annotations

import os
from pathlib import Path

_MARKERS = ("mlruns", ".workbench")


def project_root(start: str | Path | None = None) -> Path:
    """The nearest ancestor of ``start`` (default: cwd) holding ``mlruns/``; else ``start``."""
    if os.environ.get("WORKBENCH_HOME"):
        return Path(os.environ["WORKBENCH_HOME"]).resolve()
    here = Path(start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        if any((folder / marker).is_dir() for marker in _MARKERS):
            return folder
    return here


def tracking_uri(start: str | Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in ``<project>/mlruns/``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    mlruns = project_root(start) / "mlruns"
    mlruns.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{mlruns / 'mlflow.db'}"


def artifact_root(start: str | Path | None = None) -> Path:
    return project_root(start) / "mlruns" / "artifacts"


def cache_path(start: str | Path | None = None) -> Path:
    return project_root(start) / ".workbench" / "cache.sqlite"


def store_timeout() -> float:
    """Seconds the store check before a run waits for the MLflow store to answer
    (``WORKBENCH_STORE_TIMEOUT``, default 5)."""
    raw = os.environ.get("WORKBENCH_STORE_TIMEOUT") or "5"
    try:
        return float(raw)
    except ValueError:
        from .errors import WorkbenchError

        raise WorkbenchError(f"WORKBENCH_STORE_TIMEOUT={raw!r} is not a number of seconds; "
                             "fix: set it to e.g. 5, or unset it") from None
