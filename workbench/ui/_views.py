"""Shapes of the results table for reading: one row per example, variants side by side."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

FILTERS = ("all", "disagreements", "failures", "errors")


def side_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """Index (example_id, repeat); columns (field, variant) for output, error and scores."""
    fields = ["output", "error", *[c for c in frame.columns if c.startswith("score.")]]
    wide = frame.set_index(["example_id", "repeat", "variant"])[fields].unstack("variant")
    variants = list(dict.fromkeys(frame["variant"]))
    return wide.reindex(columns=pd.MultiIndex.from_product([fields, variants]))


def select(wide: pd.DataFrame, which: str, primary: str,
           kinds: Mapping[str, str]) -> list[tuple[str, int]]:
    """Rows of ``side_by_side`` to show: all, where the variants' primary scores differ,
    where any variant failed the primary metric (0, or below 0.5 when continuous), or where
    a call errored."""
    if which not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, not {which!r}")
    scores = wide[f"score.{primary}"].astype(float)
    if which == "all":
        mask = pd.Series(True, index=wide.index)
    elif which == "disagreements":
        mask = scores.nunique(axis=1, dropna=True) > 1
    elif which == "failures":
        threshold = 0.5 if kinds.get(primary) == "continuous" else 1.0
        mask = (scores < threshold).any(axis=1)
    else:
        mask = wide["error"].notna().any(axis=1)
    return list(wide.index[mask.to_numpy()])
