"""Annotate panel: a person goes through outputs and records thumbs, a 1–5 score and a
comment per example (``workbench.feedback``), then sees how far the judges agree.

Labels already given show in the form and can be changed (a new label is appended; the
latest counts). Labels given on an earlier run for the identical output carry over. The
examples come in eval-set order or as a queue, least certain judge first, and keys typed
into the shortcut box rate, save and move without the mouse.
"""

from __future__ import annotations

import getpass
from typing import Any

import ipywidgets as widgets

from ._common import error_note, esc, fmt, note, panel_box, shows_errors
from ._session import Session, as_session

_THUMBS = [("Good", True), ("Bad", False), ("No rating", None)]
_NO_SCORE = 0  # a Dropdown shows None as a blank box, so "no score" has a value
_SCORES = [("no score", _NO_SCORE), *[(str(i), i) for i in range(1, 6)]]
ORDERS = ("eval-set order", "least certain first")
KEYS = "g good · b bad · 1–5 score · s save and next · n next · p previous"


class AnnotatePanel(widgets.VBox):
    """Record human feedback on one variant's outputs, example by example."""

    def __init__(self, source: Any, *, annotator: str | None = None, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        style = {"description_width": "80px"}
        self.labels: Any = None  # feedback.for_results of the session's results
        self.annotator = widgets.Text(value=annotator or getpass.getuser(),
                                      description="Annotator", style=style)
        self.variant = widgets.Dropdown(description="Variant", style=style)
        self.order = widgets.ToggleButtons(options=ORDERS, value=ORDERS[0],
                                           style={"button_width": "auto"})
        self.example = widgets.Dropdown(description="Example", style=style,
                                        layout=widgets.Layout(width="420px"))
        self.progress = widgets.HTML()
        self.view = widgets.HTML()
        self.existing = widgets.HTML()
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
        self.shortcuts = widgets.Text(placeholder="click here, then type: " + KEYS,
                                 description="Keys", style=style,
                                 layout=widgets.Layout(width="100%"))
        self.shortcuts.add_class("wb-keys")
        self.metric = widgets.Dropdown(description="Judge", style=style)
        self.agreement = widgets.HTML()
        self.status = widgets.HTML()
        self.form = widgets.VBox([
            widgets.HBox([self.annotator, self.variant]),
            widgets.HBox([self.metric, self.order]), self.progress, self.example, self.view,
            self.existing, self.thumbs, self.score, self.comment, self.save_button,
            self.status, self.shortcuts,
            widgets.HTML("<h4>Judge–human agreement</h4>"), self.agreement])
        self.message = widgets.HTML()
        super().__init__(panel_box([self.message, self.form], "Annotate"), **kwargs)
        self.add_class("wb-panel")
        self.variant.observe(lambda _: self._reorder(), "value")
        self.order.observe(lambda _: self._reorder(first=True), "value")
        self.annotator.observe(lambda _: self._reorder(), "value")
        self.example.observe(lambda _: self._show(), "value")
        self.metric.observe(lambda _: self._on_metric(), "value")
        self.shortcuts.observe(self._on_key, "value")
        self.save_button.on_click(lambda _: self.save())
        self.session.observe(lambda _: self._rebuild(), "results")
        self._rebuild()

    # ---- public actions -------------------------------------------------------------------
    @shows_errors("status", "save the feedback")
    def save(self) -> None:
        """Record this example's feedback against the run, then move to the next one."""
        from workbench.evaluation import feedback

        results = self.session.results
        if self.thumbs.value is None and self.score.value == _NO_SCORE and \
                not self.comment.value.strip():
            self.status.value = note("Give a rating, a score or a comment first.", "warn")
            return
        row = self._row()
        feedback.record(results.run_ids["parent"], self.example.value,
                        annotator=self._who(), thumbs=self.thumbs.value,
                        score=self.score.value or None,
                        comment=self.comment.value.strip() or None, variant=self.variant.value,
                        output=row["output"] if row is not None else None)
        saved = self.example.value
        self._load_labels()
        self.status.value = note(f"Saved feedback on {saved} ({self.variant.value}).", "ok")
        self.refresh_agreement()
        self._reorder(keep=saved)
        self.step(+1, from_id=saved)

    def step(self, by: int, *, from_id: str | None = None) -> None:
        """Move ``by`` examples along the current order (the queue puts labelled ones last)."""
        ids = [value for _, value in self.example.options]
        if not ids:
            return
        here = ids.index(from_id if from_id in ids else self.example.value)
        self.example.value = ids[max(0, min(len(ids) - 1, here + by))]

    def refresh_agreement(self) -> None:
        from workbench.evaluation import feedback

        results = self.session.results
        if results is None or not results.run_ids or not self.metric.value:
            return
        if self.labels is None or len(self.labels) == 0:
            self.agreement.value = note("No feedback recorded for this run yet.", "info")
            return
        try:
            found = feedback.agreement(results, self.labels, self.metric.value)
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
        if results is None or len(results.frame) == 0:
            problem = "Run the experiment first: feedback is recorded per output of a run."
        elif not results.run_ids:
            problem = ("Feedback is stored with the MLflow run, and this run was not logged "
                       "(tracking off or cancelled). Run again with tracking on.")
        self.form.layout.display = "none" if problem else None
        self.message.value = note(problem, "info", raw=True) if problem else ""
        if problem:
            return
        self._load_labels()
        for control, values in ((self.variant, results.variants),
                                (self.metric, list(results.metrics))):
            keep = control.value if control.value in values else values[0]
            control.options = values
            control.value = keep
        self._reorder()
        self.refresh_agreement()

    def _load_labels(self) -> None:
        from workbench.evaluation import feedback

        try:
            self.labels = feedback.for_results(self.session.results)
        except Exception as exc:
            self.labels = None
            self.status.value = error_note(exc, "read the labels recorded so far")

    def _on_metric(self) -> None:
        self.refresh_agreement()
        if self.order.value == ORDERS[1]:
            self._reorder(first=True)

    def _reorder(self, keep: str | None = None, *, first: bool = False) -> None:
        """Fill the example list in the chosen order and say how many are labelled;
        ``first`` goes to the top of the list (a new order starts at its beginning)."""
        results = self.session.results
        if results is None or self.variant.value is None or not results.run_ids:
            return
        rows = results.frame[results.frame["variant"] == self.variant.value]
        ids = [str(i) for i in dict.fromkeys(rows["example_id"])]
        done = self._labelled(self.variant.value)
        if self.order.value == ORDERS[1] and self.metric.value:
            ids = self._queue_ids(ids)
        keep = None if first else keep or self.example.value
        options = [(f"{i}{'  ✓' if i in done else ''}", i) for i in ids]
        if list(self.example.options) != options:
            self.example.options = options
        if keep in ids:
            self.example.value = keep
        elif ids:
            self.example.value = ids[0]
        mine = self._labelled(self.variant.value, self._who())
        carried = 0
        if self.labels is not None and len(self.labels):
            shown = self.labels[(self.labels["variant"] == self.variant.value)
                                & self.labels["carried"]]
            carried = shown["example_id"].nunique()
        self.progress.value = (
            f"<div class='wb-progress'><b>{len(done & set(ids))} of {len(ids)} labelled</b> "
            f"for {esc(self.variant.value)} ({len(mine & set(ids))} by you"
            + (f"; {carried} carried over from earlier runs with identical outputs"
               if carried else "") + ")</div>")
        self._show()

    def _queue_ids(self, ids: list[str]) -> list[str]:
        import pandas as pd

        from workbench.evaluation import feedback

        results = self.session.results
        labels = self.labels if self.labels is not None else pd.DataFrame(
            columns=feedback.COLUMNS)
        rows = results.frame[results.frame["variant"] == self.variant.value]
        from workbench.evaluation.queue import queue

        order = queue(rows, labels, self.metric.value, annotator=self._who())
        queued = [str(i) for i in order["example_id"]]
        return queued + [i for i in ids if i not in queued]

    def _labelled(self, variant: str, annotator: str | None = None) -> set[str]:
        if self.labels is None or len(self.labels) == 0:
            return set()
        rows = self.labels[self.labels["variant"] == variant]
        if annotator is not None:
            rows = rows[rows["annotator"] == annotator]
        return {str(i) for i in rows["example_id"]}

    def _row(self) -> Any:
        results = self.session.results
        if results is None or self.variant.value is None or self.example.value is None:
            return None
        rows = results.frame[(results.frame["variant"] == self.variant.value)
                             & (results.frame["example_id"].astype(str) == self.example.value)]
        return None if rows.empty else rows.iloc[0]

    def _show(self) -> None:
        results, row = self.session.results, self._row()
        if row is None:
            return
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
        ids = [value for _, value in self.example.options]
        position = ids.index(self.example.value) + 1 if self.example.value in ids else 0
        self.view.value = (
            f"<div class='wb-muted'>{position} of {len(ids)} · {esc(self.order.value)}</div>"
            f"{shown}<div class='wb-msg'><div class='wb-role'>output of "
            f"{esc(self.variant.value)}</div>{output}</div>"
            f"<div class='wb-muted'>scorers: {judged}</div>")
        self._fill_form()

    def _fill_form(self) -> None:
        """The form shows this annotator's latest label (editable), the list everyone's."""
        import pandas as pd

        thumbs, score, comment, lines = None, _NO_SCORE, "", []
        if self.labels is not None and len(self.labels):
            rows = self.labels[(self.labels["example_id"] == self.example.value)
                               & (self.labels["variant"] == self.variant.value)]
            for _, label in rows.drop_duplicates("annotator", keep="last").iterrows():
                parts = [{True: "good", False: "bad"}.get(label["thumbs"], ""),
                         f"score {label['score']}" if pd.notna(label["score"]) else "",
                         f"“{label['comment']}”" if isinstance(label["comment"], str) else ""]
                origin = " (from an earlier run, identical output)" if label["carried"] else ""
                lines.append(f"<b>{esc(label['annotator'])}</b>: "
                             f"{esc(', '.join(p for p in parts if p))}{origin}")
                if label["annotator"] == self._who():
                    thumbs = label["thumbs"] if isinstance(label["thumbs"], bool) else None
                    score = int(label["score"]) if parts[1] else _NO_SCORE
                    comment = label["comment"] if isinstance(label["comment"], str) else ""
        self.existing.value = (note("Labelled — " + "<br>".join(lines) + ". Change the form "
                                    "and save to update yours.", "ok", raw=True)
                               if lines else "")
        self.thumbs.value, self.score.value, self.comment.value = thumbs, score, comment

    def _on_key(self, change: dict[str, Any]) -> None:
        typed = change["new"]
        if not typed:
            return
        key = typed[-1].lower()
        self.shortcuts.value = ""
        if key == "g":
            self.thumbs.value = True
        elif key == "b":
            self.thumbs.value = False
        elif key in "12345":
            self.score.value = int(key)
        elif key == "s":
            self.save()
        elif key == "n":
            self.step(+1)
        elif key == "p":
            self.step(-1)

    def _who(self) -> str:
        return self.annotator.value.strip() or getpass.getuser()
