"""The panels composed into one tabbed widget over one shared Session."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ._common import esc, note
from ._session import Session, as_session
from .ab import ABPanel
from .annotate import AnnotatePanel
from .models import ModelsPanel
from .promote import PromotePanel
from .prompts import PromptsPanel
from .results import ResultsPanel
from .run import RunPanel


class Workbench(widgets.VBox):
    """Edit, run, compare, annotate and promote one experiment, in tabs.

    ``limit`` is the Run tab's default sample size; ``annotator`` and ``approver`` default
    to the login name.
    """

    TITLES = ("Prompts", "Models", "Run", "Results", "A/B", "Annotate", "Promote")

    def __init__(self, source: Any, *, limit: int | None = None, annotator: str | None = None,
                 approver: str | None = None, mlflow_ui: str | None = None,
                 **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        self.prompts = PromptsPanel(self.session)
        self.models = ModelsPanel(self.session)
        self.run = RunPanel(self.session, limit=limit)
        self.results = ResultsPanel(self.session, **({"mlflow_ui": mlflow_ui}
                                                     if mlflow_ui else {}))
        self.ab = ABPanel(self.session)
        self.annotate = AnnotatePanel(self.session, annotator=annotator)
        self.promote = PromotePanel(self.session, approver=approver)
        # a run uses the saved prompt files: say so above Run while an editor differs
        self.unsaved_warning = widgets.HTML()
        self.unsaved_warning.add_class("wb-panel")
        self.tabs = widgets.Tab(children=[self.prompts, self.models,
                                          widgets.VBox([self.unsaved_warning, self.run]),
                                          self.results, self.ab, self.annotate, self.promote],
                                titles=self.TITLES)
        self.title = widgets.HTML()
        super().__init__([self.title, self.tabs], **kwargs)
        self.add_class("wb-workbench")
        self.session.observe(lambda _: self._refresh_title(), "experiment")
        self.session.observe(self._show_results, "results")
        self.prompts.observe(lambda _: self._refresh_unsaved(), "unsaved")
        self._refresh_title()
        self._refresh_unsaved()

    def show(self, tab: str) -> None:
        """Switch to a tab by its title."""
        self.tabs.selected_index = self.TITLES.index(tab)

    def _refresh_title(self) -> None:
        exp = self.session.experiment
        if exp is None:
            self.title.value = "<h3 style='margin:4px 0'>Prompt Workbench</h3>"
            return
        self.title.value = (
            f"<h3 style='margin:4px 0'>Prompt Workbench · {esc(exp.name)}</h3>"
            f"<div style='color:#666;font-size:12px'>{esc(exp.spec.description)}<br>"
            f"{len(exp.variants)} variants · {len(exp.evalset)} examples · primary metric "
            f"{esc(exp.spec.primary)}</div>")

    def _refresh_unsaved(self) -> None:
        names = list(self.prompts.unsaved)
        if not names:
            self.unsaved_warning.value = ""
            return
        listed = ", ".join(f"<b>{esc(n)}</b>" for n in names)
        self.unsaved_warning.value = note(
            f"Unsaved edits in the Prompts tab ({listed}): a run uses the saved "
            f"prompt{'s' * (len(names) > 1)}, not the edits. Update or revert "
            f"{'them' if len(names) > 1 else 'it'} in the Prompts tab first, or save the "
            "edit as a new variant.", "warn", raw=True)

    def _show_results(self, change: dict[str, Any]) -> None:
        if change["new"] is not None:
            self.show("Results")
