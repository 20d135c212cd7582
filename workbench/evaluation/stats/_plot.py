"""The forest plot of a comparison report; matplotlib is imported only when drawing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._optional import optional_import
from .verdict import p_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def forest_plot(report: Any) -> Figure:
    """Differences with their confidence intervals, one panel per metric, one row per pair.

    ``report`` is a ``ComparisonReport`` (this module sits below it: the report draws itself
    through this function).
    """
    Figure = optional_import("matplotlib.figure", "lab", "the forest plot").Figure

    metrics = list(report.metric_kinds)
    n_rows = len(report.pairs)
    heights = [max(1.0, 0.45 * n_rows + 0.6) for _ in metrics]
    fig = Figure(figsize=(7.5, sum(heights) + 0.4), layout="constrained")
    axes = fig.subplots(len(metrics), 1, squeeze=False, height_ratios=heights)[:, 0]
    margin = report.settings.get("non_inferiority_margin")
    for ax, metric in zip(axes, metrics, strict=True):
        rs = [p.metrics[metric] for p in report.pairs]
        ys = np.arange(len(rs))[::-1]
        for y, r in zip(ys, rs, strict=True):
            if not math.isfinite(r.diff):
                ax.text(0, y, "no paired data", ha="center", va="center", fontsize=8)
                continue
            colour = "#1f77b4" if r.favours is None else "#2ca02c"
            if r.favours == r.a:
                colour = "#d62728"
            if math.isfinite(r.ci_low) and math.isfinite(r.ci_high):
                ax.plot([r.ci_low, r.ci_high], [y, y], color=colour, lw=2)
            ax.plot([r.diff], [y], "o", color=colour)
            ax.annotate(
                p_text("p_adj", r.p_adj, report.alpha),
                (r.ci_high if math.isfinite(r.ci_high) else r.diff, y),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.axvline(0, color="grey", lw=1)
        if margin and metric == report.primary_metric:
            lim = -margin if metric not in report.lower_is_better else margin
            ax.axvline(lim, color="grey", ls="--", lw=1, label=f"margin {lim:+g}")
            ax.legend(loc="lower right", fontsize=7, frameon=False)
        ax.set_yticks(ys, [f"{r.b} - {r.a}" for r in rs], fontsize=8)
        ax.set_ylim(-0.7, len(rs) - 0.3)
        title = metric + (" (primary)" if metric == report.primary_metric else "")
        title += " (guardrail)" if metric in report.guardrails else ""
        title += ", lower is better" if metric in report.lower_is_better else ""
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
        ax.margins(x=0.25)
    axes[-1].set_xlabel(f"difference B - A with {round(100 * (1 - report.alpha))}% CI")
    return fig
