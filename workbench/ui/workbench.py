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

    The panels and the notebook share objects: ``bench.experiment``, ``bench.last_results``
    and ``bench.comparison`` are what the tabs show now (the experiment after any edit made
    in the tabs, the results of the last run, the comparison the A/B and Promote tabs use).
    A run started from the Run tab is also ``bench.experiment.last_results``. Setting
    ``bench.last_results = exp.run()`` shows a run made in code in every tab. (The panels
    themselves are ``bench.prompts``, ``bench.run``, ``bench.results``, ...)
    """

    TITLES = ("Prompts", "Models", "Run", "Results", "A/B", "Annotate", "Promote")

    def __init__(self, source: Any, *, limit: int | None = None, annotator: str | None = None,
                 approver: str | None = None, mlflow_ui: str | None = None,
                 **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        self.prompts = PromptsPanel(self.session)
        self.models = ModelsPanel(self.session)
        self.run = RunPanel(self.session, limit=limit)
        self.results = ResultsPanel(self.session, mlflow_ui=mlflow_ui)
        self.ab = ABPanel(self.session)
        self.annotate = AnnotatePanel(self.session, annotator=annotator)
        self.promote = PromotePanel(self.session, approver=approver)
        # a run uses the saved prompt files: say so above Run while an editor differs
        self.unsaved_warning = widgets.HTML()
        self.unsaved_warning.add_class("wb-panel")
        # a new tab is one more entry here and in TITLES
        self.panels: dict[str, widgets.Widget] = dict(zip(self.TITLES, [
            self.prompts, self.models, widgets.VBox([self.unsaved_warning, self.run]),
            self.results, self.ab, self.annotate, self.promote], strict=True))
        self.tabs = widgets.Tab(children=list(self.panels.values()),
                                titles=list(self.panels))
        self.title = widgets.HTML()
        super().__init__([self.title, self.tabs], **kwargs)
        self.add_class("wb-workbench")
        self.session.observe(lambda _: self._refresh_title(), "experiment")
        self.session.observe(self._show_results, "results")
        self.prompts.observe(lambda _: self._refresh_unsaved(), "unsaved")
        self._refresh_title()
        self._refresh_unsaved()

    @property
    def experiment(self) -> Any:
        """The experiment the tabs edit and run (a new object after an edit in the tabs)."""
        return self.session.experiment

    @experiment.setter
    def experiment(self, value: Any) -> None:
        self.session.experiment = value

    @property
    def last_results(self) -> Any:
        """The results every tab shows; assign a ``Results`` to show it."""
        return self.session.results

    @last_results.setter
    def last_results(self, value: Any) -> None:
        self.session.results = value

    @property
    def comparison(self) -> Any:
        """The comparison report the A/B and Promote tabs show."""
        return self.session.report

    def show(self, tab: str) -> None:
        """Switch to a tab by its title."""
        self.tabs.selected_index = list(self.panels).index(tab)

    def _refresh_title(self) -> None:
        exp = self.session.experiment
        if exp is None:
            self.title.value = "<h3 style='margin:4px 0'>Prompt Workbench</h3>"
            return
        self.title.value = (
            f"<h3 style='margin:4px 0'>Prompt Workbench · {esc(exp.name)}</h3>"
            "<div style='color:var(--jp-ui-font-color2, gray);font-size:12px'>"
            f"{esc(exp.spec.description)}<br>"
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
