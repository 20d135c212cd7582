"""The A/B comparison report: one object for the notebook, the CLI, MLflow and promotion.

``workbench.evaluation.stats.compare`` builds it; this module only presents it. matplotlib is
imported inside the plotting methods so that the CLI and serving paths never pay for it.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._frame import StatsInputError
from .types import MetricComparison, PairComparison
from .verdict import format_p

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ComparisonReport"]

_KEY_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. ]")


def _json_value(x: Any) -> Any:
    """Plain JSON types; NaN and infinities (undefined quantities) become null."""
    if isinstance(x, dict):
        return {str(k): _json_value(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_value(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _frame_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    flat = df.reset_index()
    return [_json_value(rec) for rec in flat.to_dict(orient="records")]


def _metric_key(name: str) -> str:
    # MLflow keys allow letters, digits, _ - . space and /; a "/" inside a variant name
    # (e.g. "openai/gpt-4o") would add a level to the key, so it is replaced too.
    return _KEY_UNSAFE.sub("_", name.replace("/", "_"))


def _fmt(x: float, dec: int = 3, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:+.{dec}f}" if sign else f"{x:.{dec}f}"


@dataclass(frozen=True, eq=False)
class ComparisonReport:
    """Paired comparison of prompt/model variants with a verdict.

    ``verdict`` and ``winner`` are what the promotion step reads: ``winner`` is set only for
    a significant, guardrail-clean improvement on the primary metric.
    """

    pairs: tuple[PairComparison, ...]
    verdict: str
    winner: str | None
    metric_kinds: Mapping[str, str]
    primary_metric: str
    guardrails: tuple[str, ...]
    lower_is_better: tuple[str, ...]
    alpha: float
    correction: str
    baseline: str | None
    summary: pd.DataFrame
    consistency: pd.DataFrame
    settings: Mapping[str, Any] = field(default_factory=dict)
    # Plain-language warnings shown with the verdict; code that learns more about the
    # compared variants appends with dataclasses.replace(report, caveats=report.caveats + (..,)).
    caveats: tuple[str, ...] = ()
    # The Results it was computed from, so promotion can find the registered versions.
    source: Any = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ access

    @property
    def primary(self) -> MetricComparison:
        """The primary-metric result of the (single) compared pair."""
        if len(self.pairs) != 1:
            names = ", ".join(f"{p.a}/{p.b}" for p in self.pairs)
            raise StatsInputError(
                f"this report covers {len(self.pairs)} pairs ({names}); use "
                f"report.pair(a, b).primary"
            )
        return self.pairs[0].primary

    @property
    def comparisons(self) -> list[MetricComparison]:
        return [r for p in self.pairs for r in p.metrics.values()]

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(v for p in self.pairs for v in (p.a, p.b)))

    def pair(self, a: str, b: str) -> PairComparison:
        for p in self.pairs:
            if {p.a, p.b} == {a, b}:
                return p
        known = [(p.a, p.b) for p in self.pairs]
        raise StatsInputError(f"no comparison of {a!r} and {b!r} in this report; pairs: {known}")

    def to_frame(self) -> pd.DataFrame:
        """One row per metric x pair: estimates, intervals, tests, raw and adjusted p."""
        rows = []
        for r in self.comparisons:
            rows.append(
                {
                    "a": r.a,
                    "b": r.b,
                    "metric": r.metric,
                    "kind": r.kind,
                    "n_paired": r.n_paired,
                    "n_dropped": r.n_dropped,
                    "mean_a": r.mean_a,
                    "mean_b": r.mean_b,
                    "diff": r.diff,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "test": r.test,
                    "discordant_a": r.discordant_a,
                    "discordant_b": r.discordant_b,
                    "p_value": r.p_value,
                    "p_adj": r.p_adj,
                    "effect_size": r.effect_size,
                    "effect_size_name": r.effect_size_name,
                    "mde": r.mde,
                    "favours": r.favours,
                }
            )
        out = pd.DataFrame(rows)
        out.attrs["caveats"] = list(self.caveats)
        return out

    # ------------------------------------------------------------------ MLflow / JSON

    def mlflow_metrics(self) -> dict[str, float]:
        """``ab/<metric>/<a>_vs_<b>/{diff,ci_low,ci_high,p_value,p_adj}``; undefined values
        (NaN) are left out rather than logged as NaN."""
        out: dict[str, float] = {}
        for r in self.comparisons:
            prefix = f"ab/{_metric_key(r.metric)}/{_metric_key(r.a)}_vs_{_metric_key(r.b)}"
            for name in ("diff", "ci_low", "ci_high", "p_value", "p_adj"):
                value = float(getattr(r, name))
                if math.isfinite(value):
                    out[f"{prefix}/{name}"] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything in the report as JSON-ready types (NaN becomes null)."""
        pairs = []
        for p in self.pairs:
            metrics = {}
            for name, r in p.metrics.items():
                rec = {k: getattr(r, k) for k in r.__dataclass_fields__ if k != "ni"}
                rec["ni"] = None if r.ni is None else dict(r.ni.__dict__)
                rec["significant"] = r.significant
                rec["favours"] = r.favours
                metrics[name] = rec
            pairs.append(
                {
                    "a": p.a,
                    "b": p.b,
                    "verdict": p.verdict,
                    "winner": p.winner,
                    "outcome": p.outcome,
                    "underpowered": p.underpowered,
                    "blocked_by": list(p.blocked_by),
                    "non_inferior": p.non_inferior,
                    "metrics": metrics,
                    "errors": None if p.errors is None else dict(p.errors.__dict__),
                    "caveats": list(p.caveats),
                    "resources": _frame_records(p.resources),
                }
            )
        return _json_value(
            {
                "verdict": self.verdict,
                "winner": self.winner,
                "primary_metric": self.primary_metric,
                "metrics": dict(self.metric_kinds),
                "guardrails": list(self.guardrails),
                "lower_is_better": list(self.lower_is_better),
                "alpha": self.alpha,
                "correction": self.correction,
                "baseline": self.baseline,
                "settings": dict(self.settings),
                "caveats": list(self.caveats),
                "pairs": pairs,
                "summary": _frame_records(self.summary),
                "consistency": _frame_records(self.consistency),
            }
        )

    # ------------------------------------------------------------------ text

    def _summary_table(self) -> pd.DataFrame:
        s = self.summary
        out = pd.DataFrame(index=s.index)
        out["n"] = s["n_examples"]
        out["calls"] = s["n_calls"]
        rates = zip(s["n_errors"], s["error_rate"], strict=True)
        out["errors"] = [f"{int(k)} ({100 * r:.1f}%)" for k, r in rates]
        for m in self.metric_kinds:
            out[m] = [
                f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]"
                for v, lo, hi in zip(s[m], s[f"{m}_ci_low"], s[f"{m}_ci_high"], strict=True)
            ]
        out["tokens in/out"] = [
            f"{_int(pt)}/{_int(ct)}"
            for pt, ct in zip(s["prompt_tokens"], s["completion_tokens"], strict=True)
        ]
        out["cost $"] = [_fmt(c, 4) for c in s["cost"]]
        out["p50 s"] = [_fmt(x, 2) for x in s["latency_p50"]]
        out["p95 s"] = [_fmt(x, 2) for x in s["latency_p95"]]
        return out

    def _diff_table(self) -> pd.DataFrame:
        rows = []
        multi = len(self.pairs) > 1
        for r in self.comparisons:
            tag = "*" if r.metric == self.primary_metric else ""
            tag += " (g)" if r.metric in self.guardrails else ""
            row = {"pair": f"{r.b} - {r.a}"} if multi else {}
            row.update(
                {
                    "metric": r.metric + tag,
                    "n": r.n_paired,
                    "dropped": r.n_dropped,
                    "A": _fmt(r.mean_a),
                    "B": _fmt(r.mean_b),
                    "B-A": _fmt(r.diff, 3, True),
                    f"{round(100 * (1 - self.alpha))}% CI": f"[{_fmt(r.ci_low, 3, True)}, "
                    f"{_fmt(r.ci_high, 3, True)}]",
                    "test": r.test or "-",
                    "discordant A/B": "-"
                    if r.discordant_a is None
                    else f"{r.discordant_a}/{r.discordant_b}",
                    "p": format_p(r.p_value, self.alpha),
                    "p_adj": format_p(r.p_adj, self.alpha),
                    "effect": f"{_effect_abbrev(r.effect_size_name)}={_fmt(r.effect_size, 2)}"
                    if r.effect_size_name
                    else "-",
                    "MDE": _fmt(r.mde),
                }
            )
            rows.append(row)
        return pd.DataFrame(rows)

    def _resource_table(self) -> pd.DataFrame:
        frames = []
        for p in self.pairs:
            t = p.resources.copy()
            t.columns = ["A", "B", "B-A", "B/A"]
            if len(self.pairs) > 1:
                t.index = [f"{p.b} - {p.a}: {i}" for i in t.index]
            frames.append(t)
        out = pd.concat(frames)
        return out.map(lambda x: f"{x:.4g}" if isinstance(x, float) and math.isfinite(x) else "-")

    def to_text(self) -> str:
        """Fixed-width text for the terminal."""
        corr = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}[self.correction]
        n_tests = self.settings.get("n_tests", len(self.comparisons))
        lines = []
        if len(self.pairs) == 1:
            p = self.pairs[0]
            lines.append(f"A/B comparison: A = {p.a}, B = {p.b}")
        else:
            lines.append(f"Comparison of {len(self.variants)} variants: {', '.join(self.variants)}")
        lines.append(
            f"alpha={self.alpha:g}, {corr} correction over {n_tests} "
            f"test{'s' if n_tests != 1 else ''}, "
            "paired by example; each interval inverts its test"
        )
        verdict = [
            textwrap.fill(
                line, width=100, initial_indent="  " if i else "", subsequent_indent="    "
            )
            for i, line in enumerate(self.verdict.splitlines())
        ]
        lines += ["", "Verdict: " + "\n".join(verdict), ""]
        if self.caveats:
            lines += [
                textwrap.fill("Caveat: " + c, width=100, subsequent_indent="    ")
                for c in self.caveats
            ]
            lines.append("")
        lines.append(f"Per variant (mean, {round(100 * (1 - self.alpha))}% CI)")
        lines.append(_indent(self._summary_table().to_string()))
        lines.append("")
        lines.append("Paired differences (* primary, (g) guardrail; p_adj corrected)")
        lines.append(_indent(self._diff_table().to_string(index=False)))
        lines.append("")
        lines.append("Cost and speed per successful call")
        lines.append(_indent(self._resource_table().to_string()))
        if not self.consistency.empty:
            lines.append("")
            lines.append("Consistency across repeats (share of examples whose repeats agree)")
            c = self.consistency.copy()
            c["all_agree"] = c["all_agree"].map(lambda x: _fmt(x, 2))
            c["within_sd"] = c["within_sd"].map(lambda x: _fmt(x, 3))
            c["repeats"] = c["repeats"].map(lambda x: _fmt(x, 1))
            lines.append(_indent(c.to_string()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        first = self.verdict.splitlines()[0] if self.verdict else ""
        return f"<ComparisonReport {', '.join(self.variants)}: {first}>"

    # ------------------------------------------------------------------ plots and HTML

    def forest_plot(self) -> Figure:
        """Differences with their confidence intervals, one panel per metric (scales
        differ), one row per pair; the non-inferiority margin is dashed when set."""
        from ._plot import forest_plot

        return forest_plot(self)

    def forest_plot_png(self, dpi: int = 110) -> bytes:
        buf = io.BytesIO()
        self.forest_plot().savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [
            '<div class="workbench-report">',
            f"<p><b>Verdict:</b> {'<br>'.join(esc(v) for v in self.verdict.splitlines())}</p>",
            _caveats_html(self.caveats),
            self._summary_table().to_html(escape=True),
            "<p><small>* primary, (g) guardrail; p_adj corrected "
            f"({esc(self.correction)}) across all metrics and pairs</small></p>",
            self._diff_table().to_html(index=False, escape=True),
            self._resource_table().to_html(escape=True),
        ]
        try:
            png = base64.b64encode(self.forest_plot_png()).decode("ascii")
            parts.append(
                f'<img alt="forest plot of differences" src="data:image/png;base64,{png}">'
            )  # noqa: E501
        except Exception as exc:  # a plot failure must not hide the numbers
            parts.append(f"<p><i>forest plot unavailable: {esc(str(exc))}</i></p>")
        parts.append("</div>")
        return "\n".join(parts)


def _caveats_html(caveats: tuple[str, ...]) -> str:
    if not caveats:
        return ""
    return "".join(f"<p><b>Caveat:</b> {html.escape(c)}</p>" for c in caveats)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _int(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{int(x)}"


def _effect_abbrev(name: str) -> str:
    return {"Cohen's h": "h", "Cohen's d_z": "dz"}.get(name, name)
