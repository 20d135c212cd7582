"""Annotate panel: a person goes through outputs and records thumbs, a 1–5 score and a
comment per example (``workbench.feedback``), then sees how far the judges agree."""

from __future__ import annotations

import getpass
import importlib
import importlib.util
from typing import Any

import ipywidgets as widgets

from ._common import error_note, esc, fmt, note, panel_box, shows_errors
from ._session import Session, as_session

_THUMBS = [("Good", True), ("Bad", False), ("No rating", None)]
_NO_SCORE = 0  # a Dropdown shows None as a blank box, so "no score" has a value
_SCORES = [("no score", _NO_SCORE), *[(str(i), i) for i in range(1, 6)]]


def _feedback_module() -> Any:
    if importlib.util.find_spec("workbench.evaluation.feedback") is None:
        return None
    return importlib.import_module("workbench.evaluation.feedback")


class AnnotatePanel(widgets.VBox):
    """Record human feedback on one variant's outputs, example by example."""

    def __init__(self, source: Any, *, annotator: str | None = None, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        style = {"description_width": "80px"}
        self.annotator = widgets.Text(value=annotator or getpass.getuser(),
                                      description="Annotator", style=style)
        self.variant = widgets.Dropdown(description="Variant", style=style)
        self.example = widgets.Dropdown(description="Example", style=style)
        self.view = widgets.HTML()
        self.thumbs = widgets.ToggleButtons(options=_THUMBS, value=None,
                                            icons=["thumbs-up", "thumbs-down", ""],
                                            style={"button_width": "auto"})
        self.score = widgets.Dropdown(options=_SCORES, value=_NO_SCORE,
                                      description="Score 1–5",
                                      style=style, layout=widgets.Layout(width="200px"))
        self.comment = widgets.Textarea(placeholder="why (optional)", description="Comment",
                                        style=style, rows=2,
                                        layout=widgets.Layout(width="100%"))
        self.save_button = widgets.Button(description="Save and next", button_style="primary",
                                          icon="check", layout=widgets.Layout(width="auto"))
        self.metric = widgets.Dropdown(description="Judge", style=style)
        self.agreement = widgets.HTML()
        self.status = widgets.HTML()
        self.form = widgets.VBox([
            widgets.HBox([self.annotator, self.variant]), self.example, self.view,
            self.thumbs, self.score, self.comment, self.save_button, self.status,
            widgets.HTML("<h4>Judge–human agreement</h4>"), self.metric, self.agreement])
        self.message = widgets.HTML()
        super().__init__(panel_box([self.message, self.form], "Annotate"), **kwargs)
        self.add_class("wb-panel")
        self.variant.observe(lambda _: self._show(), "value")
        self.example.observe(lambda _: self._show(), "value")
        self.metric.observe(lambda _: self.refresh_agreement(), "value")
        self.save_button.on_click(lambda _: self.save())
        self.session.observe(lambda _: self._rebuild(), "results")
        self._rebuild()

    # ---- public actions -------------------------------------------------------------------
    @shows_errors("status", "save the feedback")
    def save(self) -> None:
        """Record this example's feedback against the run, then move to the next one."""
        feedback = _feedback_module()
        results = self.session.results
        if self.thumbs.value is None and self.score.value == _NO_SCORE and \
                not self.comment.value.strip():
            self.status.value = note("Give a rating, a score or a comment first.", "warn")
            return
        feedback.record(results.run_ids["parent"], self.example.value,
                        annotator=self.annotator.value.strip() or getpass.getuser(),
                        thumbs=self.thumbs.value, score=self.score.value or None,
                        comment=self.comment.value.strip() or None, variant=self.variant.value)
        self.status.value = note(f"Saved feedback on {self.example.value} "
                                 f"({self.variant.value}).", "ok")
        self.refresh_agreement()
        ids = list(self.example.options)
        index = ids.index(self.example.value)
        if index + 1 < len(ids):
            self.example.value = ids[index + 1]

    def refresh_agreement(self) -> None:
        feedback, results = _feedback_module(), self.session.results
        if feedback is None or results is None or not results.run_ids or not self.metric.value:
            return
        try:
            recorded = feedback.load(results.run_ids["parent"])
            if len(recorded) == 0:
                self.agreement.value = note("No feedback recorded for this run yet.", "info")
                return
            found = feedback.agreement(results, recorded, self.metric.value)
        except Exception as exc:
            self.agreement.value = error_note(exc, "compute agreement")
            return
        self.agreement.value = note(
            f"<b>{esc(self.metric.value)}</b> vs people on {found.n} examples: accuracy "
            f"{fmt(found.accuracy, 2)}, Cohen's kappa {fmt(found.kappa, 2)}. "
            f"{esc(str(found.verdict))}", "info", raw=True)

    # ---- building -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        results = self.session.results
        problem = None
        if _feedback_module() is None:
            problem = ("Recording feedback needs the human-feedback API "
                       "(<code>workbench.feedback</code>), which this installation does not "
                       "have yet.")
        elif results is None or len(results.frame) == 0:
            problem = "Run the experiment first: feedback is recorded per output of a run."
        elif not results.run_ids:
            problem = ("Feedback is stored with the MLflow run, and this run was not logged "
                       "(tracking off or cancelled). Run again with tracking on.")
        self.form.layout.display = "none" if problem else None
        self.message.value = note(problem, "info", raw=True) if problem else ""
        if problem:
            return
        for control, values in ((self.variant, results.variants),
                                (self.example, list(dict.fromkeys(results.frame["example_id"]))),
                                (self.metric, list(results.metrics))):
            keep = control.value if control.value in values else values[0]
            control.options = values
            control.value = keep
        self._show()
        self.refresh_agreement()

    def _show(self) -> None:
        results = self.session.results
        if results is None or self.variant.value is None or self.example.value is None:
            return
        rows = results.frame[(results.frame["variant"] == self.variant.value)
                             & (results.frame["example_id"] == self.example.value)]
        if rows.empty:
            return
        row = rows.iloc[0]
        inputs = {}
        exp = self.session.experiment
        if exp is not None:
            found = next((e for e in exp.evalset.examples if e.id == self.example.value), None)
            inputs = dict(found.inputs) if found else {}
        shown = "".join(f"<div><b>{esc(k)}</b>: {esc(str(v))}</div>"
                        for k, v in inputs.items() if k != "id")
        output = esc(str(row["error"])) if isinstance(row["error"], str) else \
            esc(str(row["output"]))
        judged = " · ".join(f"{esc(m)}: {fmt(row[f'score.{m}'], 2)}" for m in results.metrics)
        position = list(self.example.options).index(self.example.value) + 1
        self.view.value = (
            f"<div class='wb-muted'>{position} of {len(self.example.options)}</div>{shown}"
            f"<div class='wb-msg'><div class='wb-role'>output of {esc(self.variant.value)}"
            f"</div>{output}</div><div class='wb-muted'>scorers: {judged}</div>")
        self.thumbs.value, self.score.value, self.comment.value = None, _NO_SCORE, ""
