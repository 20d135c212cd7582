"""What the panels share: the experiment being edited, its latest results and A/B report.

One ``Session`` per ``Workbench``; a panel built alone makes its own. Panels observe it, so
saving a prompt variant in one panel or finishing a run in another updates all of them.
"""

from __future__ import annotations

from typing import Any

from traitlets import Any as AnyTrait
from traitlets import HasTraits, observe


class Session(HasTraits):
    """The experiment, results and report the panels show; plain Python API objects."""

    experiment = AnyTrait(None, allow_none=True)
    results = AnyTrait(None, allow_none=True)
    report = AnyTrait(None, allow_none=True)
    # Why there is no report for these results (e.g. too few paired examples), for the A/B tab.
    report_problem = AnyTrait("")

    @observe("results")
    def _report_follows_results(self, change: Any) -> None:
        from ._common import describe_error

        results = change["new"]
        self.report_problem = ""
        if results is None or len(results.variants) < 2:
            self.report = None
        elif results.report is not None:
            self.report = results.report
        else:
            try:
                self.report = results.compare()
            except Exception as exc:  # the results stay readable without a comparison
                self.report, self.report_problem = None, describe_error(exc)


def as_session(source: Any) -> Session:
    """A panel accepts a Session, an Experiment, Results or a ComparisonReport."""
    from workbench.evaluation.stats.report import ComparisonReport
    from workbench.experiment import Experiment
    from workbench.results import Results

    if isinstance(source, Session):
        return source
    if isinstance(source, Experiment):
        return Session(experiment=source, results=source.last_results)
    if isinstance(source, Results):
        return Session(results=source)
    if isinstance(source, ComparisonReport):
        session = Session(results=source.source)
        session.report = source
        return session
    raise TypeError(
        f"a panel shows an Experiment, Results or ComparisonReport, not {type(source).__name__}")
