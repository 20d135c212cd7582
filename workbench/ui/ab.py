"""A/B panel: the paired comparison report of the variants, with its verdict in words."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ._common import esc, note, panel_box, shows_errors, themed_svg
from ._session import Session, as_session

EVERY = "*"  # the candidate choice "every other variant" ('*' is never a variant name)


class ABPanel(widgets.VBox):
    """Pick a baseline and a candidate (or every other variant, as ``workbench run`` compares
    them); the report and verdict come from ``results.compare``."""

    def __init__(self, source: Any, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        style = {"description_width": "110px"}
        self.a = widgets.Dropdown(description="Baseline (A)", style=style)
        self.b = widgets.Dropdown(description="Candidate (B)", style=style)
        self.verdict = widgets.HTML()
        self.report = widgets.HTML(layout=widgets.Layout(overflow="auto"))
        self.status = widgets.HTML()
        super().__init__(panel_box([widgets.HBox([self.a, self.b]), self.status, self.verdict,
                                    self.report], "A/B comparison"), **kwargs)
        self.add_class("wb-panel")
        self._updating = False
        self.a.observe(lambda _: self.compare(), "value")
        self.b.observe(lambda _: self.compare(), "value")
        self.session.observe(lambda _: self._rebuild(), "results")
        self.session.observe(lambda _: self._show(), "report")
        self._rebuild()

    @shows_errors("status", "compare the variants")
    def compare(self) -> None:
        """Compare the chosen pair (or every variant with the baseline); the Promote panel
        then works from this report."""
        results = self.session.results
        if self._updating or results is None or not self.a.value or not self.b.value:
            return
        if self.a.value == self.b.value:
            self.status.value = note("Choose two different variants.", "warn")
            return
        self.status.value = ""
        if _choice(self.session.report) == (self.a.value, self.b.value):
            return
        b = None if self.b.value == EVERY else self.b.value
        self.session.report = results.compare(self.a.value, b)

    def _rebuild(self) -> None:
        results = self.session.results
        if results is None or len(results.variants) < 2:
            self.verdict.value = note("Run at least two variants to compare them.", "info")
            self.report.value = ""
            return
        if self.session.report_problem:
            self.verdict.value = note("No comparison for this run: "
                                      + self.session.report_problem, "warn")
            self.report.value = ""
        variants = results.variants
        a, b = _choice(self.session.report) or variants[:2]
        self._updating = True
        try:
            self.a.options = variants
            several = [("every other variant", EVERY)] if len(variants) > 2 else []
            self.b.options = several + [(name, name) for name in variants]
            self.a.value, self.b.value = a, b
        finally:
            self._updating = False
        self._show()

    def _show(self) -> None:
        report = self.session.report
        if report is None:
            return
        kind, text = verdict_banner(report)
        self.verdict.value = note(text, kind, raw=True)
        self.report.value = report_html(report)


def verdict_banner(report: Any) -> tuple[str, str]:
    """The banner over the report: green only for a winner with nothing against it; every
    guardrail regression, every other metric a candidate is significantly worse on, and
    every pair too small to test are named."""
    from workbench.evaluation.stats import MIN_PAIRED
    from workbench.evaluation.stats.verdict import format_p

    improved = [p.winner for p in report.pairs if p.winner not in (None, report.baseline)]
    if report.winner:
        head, kind = f"<b>{esc(report.winner)}</b> is the better variant.", "ok"
    elif len(improved) > 1:
        head, kind = (f"<b>{esc(', '.join(improved))} each beat {esc(report.baseline)}; none "
                      "is shown to be the best.</b>"), "warn"
    else:
        head, kind = "<b>No variant is shown to be better.</b>", "warn"
    lines = []
    for pair in report.pairs:
        for metric, r in pair.metrics.items():
            guardrail = metric in report.guardrails
            # a guardrail counts at raw p, as the verdict reads it; other metrics corrected
            worse = r.regresses(pair.b) if guardrail else r.favours == pair.a
            if metric == pair.primary_metric or not worse:
                continue
            what = (f"regresses on guardrail {esc(metric)}" if guardrail
                    else f"is significantly worse on {esc(metric)}")
            blocked = " so it is not promoted" if metric in pair.blocked_by else ""
            p = f"p={format_p(r.p_value, r.alpha)}" if guardrail else \
                f"p_adj={format_p(r.p_adj, r.alpha)}"
            lines.append(
                f"<b>{esc(pair.b)} {what}</b>{blocked}: {r.mean_a:.3f} → {r.mean_b:.3f} "
                f"({r.diff:+.3f}, 95% CI [{r.ci_low:+.3f}, {r.ci_high:+.3f}], {p}).")
        n = pair.primary.n_paired
        if n < MIN_PAIRED:
            lines.append(
                f"{esc(pair.b)} vs {esc(pair.a)}: only {n} paired example(s). Below "
                f"{MIN_PAIRED} no difference is called significant, whatever the p-value or "
                "interval in the table says; run more examples.")
    if lines:
        kind = "warn"
    body = "".join(f"<div>{line}</div>" for line in lines)
    return kind, f"{head} The verdict and its evidence follow.{body}"


def report_html(report: Any) -> str:
    """The report's own HTML with its forest plot redrawn in the theme's colours."""
    import re

    html = report._repr_html_()
    try:
        chart = themed_svg(report.forest_plot)
    except Exception:  # the report already says when its plot is unavailable
        return html
    return re.sub(r'<img alt="forest plot of differences" src="data:image/png;base64,[^"]*">',
                  lambda _: f"<div class='wb-chart'>{chart}</div>", html)


def _choice(report: Any) -> tuple[str, str] | None:
    """The (baseline, candidate) pair of dropdown values that shows ``report``."""
    if report is None:
        return None
    if len(report.pairs) == 1:
        return report.pairs[0].a, report.pairs[0].b
    return (report.baseline, EVERY) if report.baseline is not None else None
