"""The probe sentences every embedder embeds, and the fingerprint of their vectors: a model
changed behind the same name answers them differently, so a stale index is caught on load."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

PROBES = (
    "How do I catch several exceptions in one clause?",
    "The quick brown fox jumps over the lazy dog.",
    "Return the number of items in a container.",
    "Gradient descent minimises a loss function step by step.",
)


def _fingerprint(kind: str, params: Mapping[str, Any], fitted_on: str, probe_vectors: Any
                 ) -> str:
    if hasattr(probe_vectors, "toarray"):
        probe_vectors = probe_vectors.toarray()
    # rounded so that summation order in BLAS does not change the hash
    rounded = np.round(np.asarray(probe_vectors, dtype=np.float64), 5) + 0.0
    digest = hashlib.sha256(json.dumps([kind, params, fitted_on], sort_keys=True).encode())
    digest.update(rounded.tobytes())
    return digest.hexdigest()


def same_vectors(a: Any, b: Any, tolerance: float = 1e-4) -> bool:
    """Probe vectors equal up to ``tolerance``: CPUs with other SIMD widths round the last
    bits differently, which must not refuse a good index; a changed model moves far more."""
    if hasattr(a, "toarray") != hasattr(b, "toarray") or a.shape != b.shape:
        return False
    if hasattr(a, "toarray"):
        return abs(a - b).max() <= tolerance if a.nnz or b.nnz else True
    return bool(np.allclose(a, b, rtol=0, atol=tolerance))
