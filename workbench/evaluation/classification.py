"""Classification views of a categorical metric, and the check that catches a degenerate winner.

A mean exact match says nothing about *how* a variant gets it: answering ``1`` to every row
of a balanced binary set scores 0.50, which beats a prompt that answers in sentences. So for
metrics whose scorer records the label each answer gave (``label``, ``exact_match``), this
module gives per variant the confusion matrix, per-class recall, balanced accuracy, Cohen's
kappa, the distribution of answers, and whether the variant is *degenerate*:

* its answers are nearly constant (one label in at least 95% of calls) with no more than
  slight agreement with the expected labels (kappa below 0.2), or
* its accuracy is not significantly above always answering the most common expected label
  (one-sided exact binomial test over examples, at the comparison's alpha).

An imbalanced set answered well passes: mostly answering the majority label is fine when
the rest of the answers find the minority class. Pure pandas/numpy; scipy and matplotlib
are imported when used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._optional import optional_import

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .evalsets import Example
    from .scorers.base import Scorer

__all__ = ["ClassReport", "categorical_metrics", "classify", "degenerate", "label_columns"]

MAX_CLASSES = 20  # more distinct expected answers than this is free text, not a label set
NEARLY_CONSTANT = 0.95  # share of calls with the same answer
SLIGHT_KAPPA = 0.2  # Landis & Koch: up to 0.2 is at most slight agreement
OTHER, NONE = "(other)", "(none)"
_KEY_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. ]")


def label_columns(scorer: Scorer, output: str | None, example: Example) -> dict[str, Any]:
    """``label.<metric>`` and ``expected.<metric>`` for a row, when the scorer can say them."""
    categorize = getattr(scorer, "categorize", None)
    if categorize is None or output is None:
        return {}
    try:
        got, want = categorize(output, example)
    except Exception:  # the row's score already carries the scorer's error
        return {}
    return {f"label.{scorer.name}": got, f"expected.{scorer.name}": want}


def _rows(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    cols = [f"label.{metric}", f"expected.{metric}", f"score.{metric}"]
    if any(c not in frame.columns for c in cols):
        return frame.iloc[0:0]
    ok = frame["error"].isna() if "error" in frame.columns else True
    return frame[ok].dropna(subset=cols)


def categorical_metrics(frame: pd.DataFrame, metrics: Mapping[str, str]) -> list[str]:
    """Metrics whose expected answers form a label set: 2 to 20 classes, each class on
    average on at least two examples (else it is free text, e.g. answers to questions)."""
    found = []
    for metric in metrics:
        rows = _rows(frame, metric)
        if rows.empty:
            continue
        per_example = rows.drop_duplicates("example_id")[f"expected.{metric}"]
        k = per_example.nunique()
        if 2 <= k <= MAX_CLASSES and 2 * k <= len(per_example):
            found.append(metric)
    return found


@dataclass(frozen=True)
class ClassReport:
    """How one variant answered on one categorical metric; counts are over calls."""

    variant: str
    metric: str
    confusion: pd.DataFrame  # rows: expected label; columns: answer ((other), (none) lumped)
    recall: dict[str, float]
    accuracy: float  # mean over examples, as the summary's metric mean
    balanced_accuracy: float
    kappa: float
    outputs: pd.Series  # share of calls per answer, most common first
    n_calls: int
    n_examples: int
    majority_label: str
    majority_share: float  # the accuracy of always answering the majority label
    p_above_majority: float
    degenerate: str | None  # why the variant is degenerate, or None

    @property
    def top_output(self) -> str:
        return str(self.outputs.index[0])

    @property
    def top_output_share(self) -> float:
        return float(self.outputs.iloc[0])

    def to_frame(self) -> pd.DataFrame:
        """The confusion matrix with each class's recall, as one table (for MLflow)."""
        table = self.confusion.copy()
        table.insert(0, "expected", table.index)
        table["recall"] = [self.recall[c] for c in table.index]
        return table.rename_axis(columns=None).reset_index(drop=True)

    def confusion_figure(self) -> Figure:
        """Counts per (expected, answer), shaded by the share of the expected class."""
        Figure = optional_import("matplotlib.figure", "lab", "the confusion chart").Figure

        counts = self.confusion
        shares = counts.div(counts.sum(axis=1).clip(lower=1), axis=0)
        fig = Figure(figsize=(max(3.4, 1.4 + 0.8 * counts.shape[1]),
                              1.5 + 0.5 * counts.shape[0]), layout="constrained")
        ax = fig.subplots()
        ax.imshow(shares.to_numpy(dtype=float), cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (i, j), n in pd.DataFrame(counts.to_numpy()).stack().items():
            colour = "white" if shares.iat[i, j] > 0.6 else "black"
            ax.text(j, i, str(int(n)), ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(counts.shape[1]), [str(c) for c in counts.columns], fontsize=8,
                      rotation=30, ha="right")
        ax.set_yticks(range(counts.shape[0]), [str(c) for c in counts.index], fontsize=8)
        ax.set_xlabel("answer", fontsize=8)
        ax.set_ylabel("expected", fontsize=8)
        ax.set_title(f"{self.variant}: {self.metric}\nbalanced accuracy "
                     f"{self.balanced_accuracy:.2f}, kappa {self.kappa:.2f}", fontsize=9,
                     loc="left")
        return fig


def classify(frame: pd.DataFrame, metric: str, variant: str, *,
             alpha: float = 0.05) -> ClassReport | None:
    """The classification view of ``variant`` on ``metric``; None without labelled rows."""
    rows = _rows(frame[frame["variant"] == variant], metric)
    if rows.empty:
        return None
    want = rows[f"expected.{metric}"].astype(str)
    got = rows[f"label.{metric}"].astype(str)
    per_example = rows.drop_duplicates("example_id")[f"expected.{metric}"].astype(str)
    classes = sorted(per_example.unique(), key=lambda c: (-int((per_example == c).sum()), c))
    lumped = got.where(got.isin(classes) | (got == NONE), OTHER)
    columns = classes + [c for c in (NONE, OTHER) if (lumped == c).any()]
    confusion = pd.crosstab(want, lumped).reindex(index=classes, columns=columns, fill_value=0)
    confusion = confusion.rename_axis(index="expected", columns="answer")
    recall = {c: float(confusion.at[c, c] / confusion.loc[c].sum()) if confusion.loc[c].sum()
              else math.nan for c in classes}
    p_want = want.value_counts(normalize=True)
    p_got = lumped.value_counts(normalize=True)
    chance = float(sum(p_want.get(c, 0.0) * p_got.get(c, 0.0) for c in classes))
    observed = float((got == want).mean())
    kappa = (observed - chance) / (1 - chance) if chance < 1 else math.nan
    scores = rows.groupby("example_id")[f"score.{metric}"].mean()
    majority_share = float(per_example.value_counts(normalize=True).iloc[0])
    p_value = _p_above(float(scores.sum()), len(scores), majority_share)
    outputs = got.value_counts(normalize=True).rename_axis("answer").rename("share")
    report = ClassReport(
        variant=variant, metric=metric, confusion=confusion, recall=recall,
        accuracy=float(scores.mean()),
        balanced_accuracy=float(pd.Series(recall).mean()), kappa=float(kappa),
        outputs=outputs, n_calls=len(rows), n_examples=len(scores),
        majority_label=classes[0], majority_share=majority_share, p_above_majority=p_value,
        degenerate=None)
    return _with_verdict(report, alpha)


def _p_above(successes: float, n: int, p0: float) -> float:
    """One-sided exact binomial p of an accuracy above ``p0``; repeats count once per example
    (an example's mean score, rounded to a whole success)."""
    from scipy.stats import binomtest

    return float(binomtest(int(round(successes)), n, p0, alternative="greater").pvalue)


def _constant_reason(r: ClassReport) -> str | None:
    if r.top_output_share >= NEARLY_CONSTANT and not r.kappa >= SLIGHT_KAPPA:
        return (f"answers nearly constant on {r.metric} ({_short(r.top_output)} in "
                f"{r.top_output_share:.0%} of {r.n_calls} calls, Cohen's kappa {_num(r.kappa)})")
    return None


def _with_verdict(r: ClassReport, alpha: float) -> ClassReport:
    reasons = [reason for reason in (_constant_reason(r),) if reason]
    if not r.p_above_majority < alpha:
        reasons.append(f"{r.metric} {r.accuracy:.3f} is not significantly above the "
                       f"majority-class baseline {r.majority_share:.3f} (always answering "
                       f"{_short(r.majority_label)}; one-sided exact binomial p="
                       f"{r.p_above_majority:.2g}, n={r.n_examples})")
        if r.kappa >= SLIGHT_KAPPA and r.accuracy > r.majority_share:
            reasons[-1] += (f"; its answers do follow the labels (kappa {r.kappa:.2f}), so "
                            "more examples may show it is better than the baseline")
    if not reasons:
        return r
    return replace(r, degenerate="; ".join(reasons))


def degenerate(frame: pd.DataFrame, primary: str, *, alpha: float = 0.05,
               metrics: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variant -> why it is degenerate; empty when every variant discriminates.

    A categorical ``primary`` metric gets both checks. Otherwise only nearly constant
    answers on another categorical metric in ``metrics`` count (a constant answer is one
    whatever the score); rouge, judges and numbers alone are never flagged.
    """
    names = list(dict.fromkeys(frame["variant"]))
    found: dict[str, str] = {}
    if primary in categorical_metrics(frame, {primary: ""}):
        for variant in names:
            report = classify(frame, primary, variant, alpha=alpha)
            if report is not None and report.degenerate:
                found[variant] = report.degenerate
        return found
    for metric in categorical_metrics(frame, metrics or {}):
        for variant in names:
            report = classify(frame, metric, variant, alpha=alpha)
            reason = _constant_reason(report) if report is not None else None
            if reason and variant not in found:
                found[variant] = reason
    return found


def summary_columns(frame: pd.DataFrame, metrics: Mapping[str, str], *,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Per variant, per categorical metric: balanced accuracy, kappa, per-class recall,
    the majority baseline and its p, the most common answer and its share, degenerate."""
    rows: dict[str, dict[str, Any]] = {}
    for metric in categorical_metrics(frame, metrics):
        for variant in dict.fromkeys(frame["variant"]):
            r = classify(frame, metric, variant, alpha=alpha)
            if r is None:
                continue
            row = rows.setdefault(str(variant), {})
            row[f"{metric}_balanced_accuracy"] = r.balanced_accuracy
            row[f"{metric}_kappa"] = r.kappa
            for label, value in r.recall.items():
                row[f"{metric}_recall.{_KEY_UNSAFE.sub('_', label)}"] = value
            row[f"{metric}_majority_baseline"] = r.majority_share
            row[f"{metric}_p_vs_majority"] = r.p_above_majority
            row[f"{metric}_top_answer"] = r.top_output
            row[f"{metric}_top_answer_share"] = r.top_output_share
            row[f"{metric}_degenerate"] = r.degenerate is not None
    return pd.DataFrame.from_dict(rows, orient="index")


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _num(x: float) -> str:
    return "undefined" if math.isnan(x) else f"{x:.2f}"
