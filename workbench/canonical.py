"""One JSON form for hashes and cache keys: sorted keys, no spaces, non-ASCII kept.

Below every layer that hashes content (templates, model configs, cache keys, eval sets).
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
