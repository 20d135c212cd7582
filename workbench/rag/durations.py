"""Durations as written in an index's ``freshness_sla``: ``"24h"``, ``"7d"``."""

from __future__ import annotations

import re
from datetime import timedelta

from .errors import RagError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"24h"``, ``"7d"`` or ``"2w"``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text))
    if not match:
        raise RagError(f"freshness_sla {text!r} is not a duration; write e.g. '24h', '30m', "
                       "'7d'")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
