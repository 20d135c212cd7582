"""Run panel: sample size, repeats and concurrency; Run and Cancel; live progress.

The run happens on a worker thread with its own event loop, so the kernel keeps answering
(other cells run, Cancel is heard) while calls are in flight. Counters come from the
experiment's ``Progress`` listeners, called after every finished call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from workbench.runner import Progress

from ._common import error_note, esc, note, panel_box
from ._session import Session, as_session

_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class RunPanel(widgets.VBox):
    """Start and stop a run of the experiment's variant × example matrix."""

    def __init__(self, source: Any, *, limit: int | None = None, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        style = {"description_width": "90px"}
        self.evalset = widgets.Dropdown(description="Eval set", style=style,
                                        layout=widgets.Layout(width="420px"))
        self.limit = widgets.BoundedIntText(description="Examples", min=1, value=1,
                                            style=style, layout=widgets.Layout(width="200px"))
        self.repeats = widgets.BoundedIntText(description="Repeats", min=1, max=100, value=1,
                                              style=style, layout=widgets.Layout(width="200px"))
        self.concurrency = widgets.BoundedIntText(description="Concurrency", min=1, max=64,
                                                  value=4, style=style,
                                                  layout=widgets.Layout(width="200px"))
        self.track = widgets.Checkbox(value=True, description="Log to MLflow",
                                      style={"description_width": "initial"},
                                      layout=widgets.Layout(width="160px"))
        self.plan = widgets.HTML()
        self.run_button = widgets.Button(description="Run", button_style="primary",
                                         icon="play")
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning",
                                            icon="stop", disabled=True)
        self.bar = widgets.IntProgress(value=0, min=0, max=1, bar_style="info",
                                       layout=widgets.Layout(width="100%"))
        self.counters = widgets.HTML()
        self.status = widgets.HTML()
        super().__init__(panel_box([
            self.evalset, widgets.HBox([self.limit, self.repeats, self.concurrency,
                                        self.track]),
            self.plan, widgets.HBox([self.run_button, self.cancel_button]),
            self.bar, self.counters, self.status], "Run"), **kwargs)
        self.add_class("wb-panel")
        self._limit_default = limit
        self._quiet = False
        self._thread: threading.Thread | None = None
        self._listening: Any = None
        self._cancel_requested = False
        self._started = 0.0
        self.run_button.on_click(lambda _: self.start())
        self.cancel_button.on_click(lambda _: self.cancel())
        for control in (self.limit, self.repeats):
            control.observe(lambda _: self._refresh_plan(), "value")
        self.evalset.observe(self._on_evalset, "value")
        self.session.observe(lambda _: self._rebuild(), "experiment")
        self._rebuild()

    # ---- public actions -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run in the background; the Results and A/B panels update when it finishes."""
        exp = self.session.experiment
        if exp is None or self.running:
            return
        self._listen(exp)
        self._cancel_requested = False
        options = {"limit": self.limit.value, "repeats": self.repeats.value,
                   "concurrency": self.concurrency.value, "track": self.track.value}
        self.bar.value, self.bar.max, self.bar.bar_style = 0, self._planned_calls(), "info"
        self.counters.value = self._counter_text(Progress(total=self.bar.max))
        self.status.value = note("Running… the notebook stays usable; Cancel stops sending "
                                 "new calls.", "info")
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._work, args=(exp, options),
                                        name="workbench-ui-run", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop sending new calls; calls already finished stay cached for the next run."""
        exp = self.session.experiment
        if self.running and exp is not None:
            self._cancel_requested = True
            exp.cancel()
            self.cancel_button.disabled = True
            self.status.value = note("Cancelling: waiting for the calls in flight…", "warn")

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends (for scripts and tests); returns the session's results."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.session.results

    # ---- the worker -----------------------------------------------------------------------
    def _work(self, exp: Any, options: dict[str, Any]) -> None:
        try:
            results = asyncio.run(exp.arun(progress=False, **options))
        except Exception as exc:
            self._finish(exp, error=exc)
            return
        self._finish(exp, results=results)

    def _finish(self, exp: Any, *, results: Any = None, error: Exception | None = None) -> None:
        seconds = time.monotonic() - self._started
        self.run_button.disabled, self.cancel_button.disabled = False, True
        progress = exp.progress
        if error is not None:
            self.bar.bar_style = "danger"
            self.status.value = error_note(error, "run the experiment")
            return
        if self._cancel_requested:
            self.bar.bar_style = "warning"
            parent = results.run_ids.get("parent") if results is not None else None
            logged = (f" What was paid for is logged to MLflow, marked partial (run "
                      f"{parent[:8]})." if parent else "")
            self.status.value = note(
                f"Cancelled after {progress.done} of {progress.total} calls ({seconds:.1f} s). "
                "Finished calls are cached: Run again resumes without paying for them twice."
                f"{logged}", "warn")
            return
        self.bar.bar_style = "success"
        logged = ""
        if results.run_ids.get("parent"):
            logged = f" Logged to MLflow (run {results.run_ids['parent'][:8]})."
        elif results.log_error:
            logged = f" {results.log_error}."
        try:
            self.session.results = results
        except Exception as exc:  # e.g. too few rows to compare: the run itself is fine
            self.status.value = error_note(exc, "show the results")
            return
        self.status.value = note(
            f"Finished {progress.done} calls in {seconds:.1f} s: {progress.errors} errors, "
            f"{progress.cache_hits} from the cache, cost ${progress.cost:.4f}.{logged} "
            "See the Results and A/B tabs.", "ok")

    def _on_progress(self, progress: Progress) -> None:
        if self._cancel_requested and self._listening is not None:
            self._listening.cancel()  # again: a Cancel before the run began was cleared
        self.bar.max = max(1, progress.total)
        self.bar.value = progress.done
        self.counters.value = self._counter_text(progress)

    @staticmethod
    def _counter_text(p: Progress) -> str:
        return (f"<div class='wb-muted'><b>{p.done}</b> / {p.total} calls · "
                f"<b>{p.errors}</b> errors · <b>{p.cache_hits}</b> cache hits · "
                f"cost so far <b>${p.cost:.4f}</b></div>")

    def _listen(self, exp: Any) -> None:
        if self._listening is exp:
            return
        if self._listening is not None and self._on_progress in self._listening.progress.listeners:
            self._listening.progress.listeners.remove(self._on_progress)
        exp.progress.listeners.append(self._on_progress)
        self._listening = exp

    # ---- building -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        exp = self.session.experiment
        if exp is None:
            self.plan.value = note("Load an experiment to run it.", "info")
            self.run_button.disabled = True
            return
        self._listen(exp)
        directory = exp.spec.directory
        current = Path(exp.evalset.source)
        files = sorted({current.resolve(), *(p.resolve() for p in directory.rglob("*")
                                             if p.suffix in _DATA_SUFFIXES
                                             and "prompts" not in p.parts)})
        options = [(_relative(p, directory), str(p)) for p in files]
        self._quiet = True
        try:
            self.evalset.options = options
            self.evalset.value = str(current.resolve())
        finally:
            self._quiet = False
        size = len(exp.evalset)
        self.limit.max = size
        wanted = self._limit_default or size
        self.limit.value = min(wanted, size)
        self.repeats.value = exp.spec.run.repeats
        self.concurrency.value = exp.spec.run.concurrency
        self.limit.description_tooltip = f"of {size} in the eval set"
        self._refresh_plan()

    def _on_evalset(self, change: dict[str, Any]) -> None:
        exp = self.session.experiment
        if self._quiet or exp is None or change["new"] is None or \
                Path(change["new"]) == Path(exp.evalset.source).resolve():
            return
        from workbench.evaluation.evalsets import EvalSet
        from workbench.experiment import Experiment

        try:
            evalset = EvalSet.from_file(change["new"], id_field=exp.spec.eval_set.id_field)
            self.session.experiment = Experiment(exp.spec, evalset=evalset)
        except Exception as exc:
            self.status.value = error_note(exc, "use that eval set")
            self._quiet = True
            try:
                self.evalset.value = change["old"]
            finally:
                self._quiet = False

    def _planned_calls(self) -> int:
        exp = self.session.experiment
        return self.limit.value * self.repeats.value * len(exp.variants)

    def _refresh_plan(self) -> None:
        exp = self.session.experiment
        if exp is None:
            return
        self.plan.value = (
            f"<div class='wb-muted'>{self.limit.value} of {len(exp.evalset)} examples × "
            f"{len(exp.variants)} variants ({esc(', '.join(v.name for v in exp.variants))}) × "
            f"{self.repeats.value} repeat{'s' * (self.repeats.value != 1)} = "
            f"<b>{self._planned_calls()}</b> calls. Calls already in the cache cost nothing."
            "</div>")


def _relative(path: Path, directory: Path) -> str:
    try:
        return str(path.relative_to(directory.resolve()))
    except ValueError:
        return str(path)
