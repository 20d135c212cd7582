"""Text metrics that ``evaluate.load`` reads from this folder, so no hub access is needed.

The hub is unreachable offline and ``evaluate`` ships no metric scripts; these modules keep
its API (``load`` / ``compute`` / ``combine``) while computing with the reference libraries.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import ScorerError

FOLDER = Path(__file__).parent
BUNDLED = ("chrf", "rouge", "sacrebleu", "token_f1")

__all__ = ["BUNDLED", "combine", "load", "resolve"]


def resolve(name: str) -> str:
    """A bundled metric's file, a path the user gave, or the hub name when the hub is allowed.

    Offline (the default) an unknown name fails here at once, instead of inside ``evaluate``
    with a message that blames a missing script.
    """
    if name in BUNDLED:
        return str(FOLDER / f"{name}.py")
    if Path(name).exists():
        return str(Path(name).resolve())
    if _offline():
        raise ScorerError(
            f"metric {name!r} is neither bundled {list(BUNDLED)} nor a path, and the "
            "Hugging Face hub is offline (HF_EVALUATE_OFFLINE=1). Give the path to a metric "
            "module (a .py file subclassing evaluate.Metric), or set HF_EVALUATE_OFFLINE=0 "
            "before importing workbench on a machine that can reach the hub."
        )
    return name


def load(name: str, **kwargs: Any) -> Any:
    """``evaluate.load`` for a bundled name, a path, or (online only) a hub name."""
    import evaluate

    kwargs.setdefault("keep_in_memory", True)  # no cache files, no cross-process lock waits
    target = resolve(name)
    try:
        return evaluate.load(target, **kwargs)
    except Exception as exc:
        raise ScorerError(f"metric {name!r} could not be loaded from {target}: {exc}") from exc


def combine(names: list[str], **kwargs: Any) -> Any:
    """``evaluate.combine`` over bundled names or paths."""
    import evaluate

    return evaluate.combine([load(n, **kwargs) for n in names])


def _offline() -> bool:
    flag = os.environ.get("HF_EVALUATE_OFFLINE", "") or os.environ.get("HF_HUB_OFFLINE", "")
    return flag.strip().lower() in ("1", "true", "yes", "on")
