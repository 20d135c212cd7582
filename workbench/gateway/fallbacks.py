"""Which model answered a variant's calls: its own, or a fallback.

A model with fallbacks answers through another model when it keeps failing. Those answers
are paid for and kept, but statistics that read them as the variant's own model compare the
wrong thing, so each variant's fallback share is shown, and a comparison resting on
fallback answers carries a caveat and is not promoted without a reason.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd


def fallback_shares(frame: pd.DataFrame) -> dict[str, float]:
    """Per variant, the share of its answered calls that a fallback model answered."""
    if not len(frame) or "fallback" not in frame.columns:
        return {}
    answered = frame[frame["error"].isna()]
    return {str(variant): float(rows["fallback"].eq(True).mean())
            for variant, rows in answered.groupby("variant", sort=False)}


def fallback_caveats(frame: pd.DataFrame, variants: Iterable[str]) -> tuple[str, ...]:
    """One sentence per variant whose answers came partly from a fallback model."""
    if not len(frame) or "fallback" not in frame.columns:
        return ()
    caveats = []
    for variant in variants:
        mine = frame[(frame["variant"] == variant) & frame["error"].isna()]
        borrowed = mine[mine["fallback"].eq(True)]
        if borrowed.empty:
            continue
        others = ", ".join(sorted(set(borrowed["answered_by"].dropna().astype(str)))) or "?"
        caveats.append(
            f"{variant}: {len(borrowed)} of {len(mine)} answers ({len(borrowed) / len(mine):.0%}) "
            f"came from the fallback {others}, not {mine['model'].iloc[0]}; its results mix "
            "models (run again once its own model answers; promotion needs a reason)")
    return tuple(caveats)
