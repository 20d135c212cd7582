"""A/B panel: the paired comparison report of the variants, with its verdict in words."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ._common import esc, note, panel_box, shows_errors
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
        kind = "ok" if report.winner else "warn"
        improved = [p.winner for p in report.pairs if p.winner not in (None, report.baseline)]
        if report.winner:
            winner = f"<b>{esc(report.winner)}</b> is the better variant."
        elif len(improved) > 1:
            winner = (f"<b>{esc(', '.join(improved))} each beat {esc(report.baseline)}; none "
                      "is shown to be the best.</b>")
        else:
            winner = "<b>No variant is shown to be better.</b>"
        self.verdict.value = note(f"{winner} The verdict and its evidence follow.", kind,
                                  raw=True)
        self.report.value = report._repr_html_()


def _choice(report: Any) -> tuple[str, str] | None:
    """The (baseline, candidate) pair of dropdown values that shows ``report``."""
    if report is None:
        return None
    if len(report.pairs) == 1:
        return report.pairs[0].a, report.pairs[0].b
    return (report.baseline, EVERY) if report.baseline is not None else None
