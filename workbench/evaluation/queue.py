"""Which output to label next: where a judge is least certain, or other verdicts (the other
scorers', people's) disagree with it. Labels there teach the most about whether to trust it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .feedback import FeedbackError, _human_pass, _latest, _missing

if TYPE_CHECKING:
    import pandas as pd

    from ..results import Results


QUEUE_COLUMNS = ["example_id", "variant", "judge", "uncertainty", "disagreement", "priority",
                 "labelled", "why"]


def queue(results: Results | pd.DataFrame, feedback: pd.DataFrame, metric: str, *,
          annotator: str | None = None, pass_score: int = 4) -> pd.DataFrame:
    """Which (example, variant) to label next: unlabelled first, then where the judge
    ``metric`` is least certain or other labels disagree with it.

    ``uncertainty`` is 1 at the judge's pass/fail cut and 0 at the ends of its scale (an
    average over repeats that splits pass and fail is uncertain too); ``disagreement`` is
    the share of the other verdicts on the row (the other scorers' and people's) that
    differ from the judge's. ``priority`` is the larger of the two. ``labelled`` is whether
    ``annotator`` (anyone, when None) has labelled the row.
    """
    import pandas as pd

    frame = getattr(results, "frame", results)
    metrics = [c[6:] for c in frame.columns if c.startswith("score.")]
    if metric not in metrics:
        raise FeedbackError(f"no metric {metric!r} in the results; scored metrics: {metrics}")
    means = frame.groupby(["example_id", "variant"], sort=False)[
        [f"score.{m}" for m in metrics]].mean()
    scales = {m: _scale(frame[f"score.{m}"], pass_score) for m in metrics}
    labels = _latest(feedback)
    labels = labels.assign(human=[_human_pass(t, s, pass_score) for t, s in
                                  zip(labels["thumbs"], labels["score"], strict=True)])
    rows = []
    for (example_id, variant), scores in means.iterrows():
        mine = labels[(labels["example_id"] == example_id) & (labels["variant"] == variant)]
        done = mine if annotator is None else mine[mine["annotator"] == annotator]
        rows.append(_queue_row(example_id, variant, scores, metric, mine, len(done) > 0,
                               scales))
    out = pd.DataFrame(rows, columns=QUEUE_COLUMNS)
    out["_order"] = range(len(out))
    return (out.sort_values(["labelled", "priority", "_order"], ascending=[True, False, True],
                            kind="stable", na_position="last")
            .drop(columns="_order").reset_index(drop=True))


def _queue_row(example_id: str, variant: str, scores: pd.Series, metric: str,
               labels: pd.DataFrame, labelled: bool,
               scales: dict[str, tuple[float, float, float]]) -> list[Any]:
    judge = scores[f"score.{metric}"]
    if _missing(judge):
        return [example_id, variant, math.nan, math.nan, math.nan, math.nan, labelled,
                "no judge score (the call failed)"]
    cut, low, high = scales[metric]
    side = (cut - low) if judge < cut else (high - cut)  # each side of the cut scaled alone
    uncertainty = max(0.0, 1 - abs(judge - cut) / side) if side > 0 else 0.0
    passed = judge >= cut
    others, why = [], [f"{metric} {judge:.2f} (cut {cut:g})"]
    for column, value in scores.items():
        name = str(column)[6:]
        if name == metric or _missing(value):
            continue
        other_cut = scales[name][0]
        others.append(value >= other_cut)
        if (value >= other_cut) != passed:
            why.append(f"{name} says {'pass' if value >= other_cut else 'fail'}")
    for who, human in zip(labels["annotator"], labels["human"], strict=True):
        if human is None or _missing(human):
            continue
        others.append(bool(human))
        if bool(human) != passed:
            why.append(f"{who} says {'good' if human else 'bad'}")
    disagreement = sum(o != passed for o in others) / len(others) if others else 0.0
    return [example_id, variant, float(judge), uncertainty, disagreement,
            max(uncertainty, disagreement), labelled, "; ".join(why)]


def _scale(values: pd.Series, pass_score: int) -> tuple[float, float, float]:
    """(pass/fail cut, low, high) of a metric: 0-1 scores cut at 0.5, 1-5 ones at pass_score."""
    values = values.astype(float)
    if values.dropna().between(0, 1).all():
        return 0.5, 0.0, 1.0
    return float(pass_score), 1.0, 5.0
