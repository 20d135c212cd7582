"""Run panel: sample size, repeats and concurrency; Run and Cancel; live progress.

The run happens on a worker thread with its own event loop, so the kernel keeps answering
(other cells run, Cancel is heard) while calls are in flight. Counters come from the
experiment's ``Progress`` listeners, called after every finished call. Model keys are checked
before the thread starts, so a missing key is an error naming its variable and nothing is sent.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from workbench.runner import Progress

from ._common import describe_error, error_note, esc, note, panel_box
from ._session import Session, as_session

_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class RunPanel(widgets.VBox):
    """Start and stop a run of the experiment's variant × example matrix."""

    def __init__(self, source: Any, *, limit: int | None = None, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        style = {"description_width": "90px"}
        self.evalset = widgets.Dropdown(description="Eval set", style=style,
                                        layout=widgets.Layout(width="420px"))
        self.evalset_status = widgets.HTML()  # next to the control whose change it reports
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
        self.estimate = widgets.HTML()
        self.status = widgets.HTML()  # under the Run button: what starting or finishing did
        super().__init__(panel_box([
            self.evalset, self.evalset_status,
            widgets.HBox([self.limit, self.repeats, self.concurrency, self.track]),
            self.plan, widgets.HBox([self.run_button, self.cancel_button]), self.status,
            self.estimate, self.bar, self.counters], "Run"), **kwargs)
        self.add_class("wb-panel")
        self._limit_default = limit
        self._quiet = False
        self._thread: threading.Thread | None = None
        self._listening: Any = None
        self._cancel_requested = False
        self._started = 0.0
        self._missing_key = ""  # the key warning shown, cleared once the key is there
        self._estimates: dict[tuple[Any, int, int], str] = {}  # for the current experiment
        self._estimating: tuple[Any, int, int] | None = None
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
        try:
            check_keys(exp)
        except Exception as exc:
            self.status.value = error_note(exc, "start the run")
            return
        self._listen(exp)
        self._cancel_requested = False
        options = {"limit": self.limit.value, "repeats": self.repeats.value,
                   "concurrency": self.concurrency.value, "track": self.track.value}
        self.bar.value, self.bar.max, self.bar.bar_style = 0, self._planned_calls(), "info"
        self._started = time.monotonic()
        self.counters.value = self._counter_text(Progress(total=self.bar.max))
        self.status.value = note("Running… the notebook stays usable; Cancel stops sending "
                                 "new calls.", "info")
        self.run_button.disabled, self.cancel_button.disabled = True, False
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
        self._estimate_now(exp, options["limit"], options["repeats"])
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
        kind, problems = finished_kind(results)
        self.bar.bar_style = {"ok": "success", "warn": "warning", "error": "danger"}[kind]
        self.status.value = note(
            f"Finished {progress.done} calls in {seconds:.1f} s: {progress.errors} errors, "
            f"{progress.cache_hits} from the cache, cost ${progress.cost:.4f}.{logged} "
            f"{problems}See the Results and A/B tabs.", kind)

    def _on_progress(self, progress: Progress) -> None:
        if self._cancel_requested and self._listening is not None:
            self._listening.cancel()  # again: a Cancel before the run began was cleared
        self.bar.max = max(1, progress.total)
        self.bar.value = progress.done
        self.counters.value = self._counter_text(progress)

    def _counter_text(self, p: Progress) -> str:
        elapsed = time.monotonic() - self._started
        left = p.total - p.done
        eta = (f"about {_duration(elapsed / p.done * left)} left" if p.done and left > 0
               else "ETA after the first call" if left > 0 else "done")
        per_variant = " · ".join(
            f"{esc(name)} <b>{done}</b>/{total}" + (f" ({errors} errors)" if errors else "")
            for name, (done, total, errors) in p.variants.items())
        return (f"<div class='wb-muted'><b>{p.done}</b> / {p.total} calls · "
                f"<b>{p.errors}</b> errors · <b>{p.cache_hits}</b> cache hits · "
                f"cost so far <b>${p.cost:.4f}</b> · elapsed {_duration(elapsed)} · "
                f"{eta}</div>"
                + (f"<div class='wb-muted wb-variants'>{per_variant}</div>"
                   if per_variant else ""))

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
        self._estimates = {k: v for k, v in self._estimates.items() if k[0] is exp}
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
        missing = ""
        try:
            check_keys(exp)
        except Exception as exc:  # said now, next to Run, and again if Run is pressed
            missing = note(describe_error(exc), "warn")
        if missing or self.status.value == self._missing_key:
            self.status.value = missing
        self._missing_key = missing

    def _on_evalset(self, change: dict[str, Any]) -> None:
        exp = self.session.experiment
        if self._quiet or exp is None or change["new"] is None or \
                Path(change["new"]) == Path(exp.evalset.source).resolve():
            return
        from workbench.evaluation.evalsets import EvalSet
        from workbench.experiment import Experiment

        try:
            evalset = EvalSet.from_file(change["new"], id_field=exp.spec.eval_set.id_field)
            # scorers added in the notebook (not in experiment.yaml) come along
            switched = Experiment(exp.spec, evalset=evalset,
                                  extra_scorers=exp.extra_scorers)
            switched.progress.listeners.extend(
                f for f in exp.progress.listeners if f != self._on_progress)
            self.evalset_status.value = ""
            self.session.experiment = switched
        except Exception as exc:
            self.evalset_status.value = error_note(exc, "use that eval set")
            self._quiet = True
            try:
                self.evalset.value = change["old"]
            finally:
                self._quiet = False

    def _planned_calls(self) -> int:
        exp = self.session.experiment
        return self.limit.value * self.repeats.value * len(exp.variants)

    def _estimate_now(self, exp: Any, limit: int, repeats: int) -> None:
        """Show the estimate for these settings (computed once per experiment and settings)."""
        key = (exp, limit, repeats)
        if key not in self._estimates:
            try:
                self._estimates[key] = estimate_html(exp.estimate(limit=limit, repeats=repeats))
            except Exception as exc:  # the estimate informs; the run's own checks decide
                self._estimates[key] = error_note(exc, "estimate tokens and cost")
        if self._estimating == key or self.running:
            self.estimate.value = self._estimates[key]

    def _estimate_later(self) -> None:
        """Estimate the settings shown, off the kernel's thread (a tokenizer can take seconds
        to load); only the latest settings are estimated and shown."""
        exp = self.session.experiment
        if exp is None or self.running:
            return
        key = (exp, self.limit.value, self.repeats.value)
        self._estimating = key
        self.estimate.value = self._estimates.get(
            key, "<div class='wb-muted'>Estimating tokens and cost…</div>")

        def work() -> None:
            time.sleep(0.3)  # typing a number: wait for the last digit
            if self._estimating == key and not self.running:
                self._estimate_now(exp, key[1], key[2])

        if key not in self._estimates:
            threading.Thread(target=work, name="workbench-ui-estimate", daemon=True).start()

    def _refresh_plan(self) -> None:
        exp = self.session.experiment
        if exp is None:
            return
        self._estimate_later()
        self.plan.value = (
            f"<div class='wb-muted'>{self.limit.value} of {len(exp.evalset)} examples × "
            f"{len(exp.variants)} variants ({esc(', '.join(v.name for v in exp.variants))}) × "
            f"{self.repeats.value} repeat{'s' * (self.repeats.value != 1)} = "
            f"<b>{self._planned_calls()}</b> calls. Calls already in the cache cost nothing."
            "</div>")


def check_keys(exp: Any) -> None:
    """Every key the run needs (variants, judge, scorers' models) is set; else the
    gateway's error naming the environment variable, before any call."""
    from workbench.gateway.modelcheck import model_configs

    configs = [*(v.model for v in exp.variants),
               *model_configs(exp.spec, exp.scorers).values()]
    for config in configs:
        if config is not None:
            config.check_keys()


def estimate_html(estimate: Any) -> str:
    """``Experiment.estimate``'s table in one line: calls, tokens, worst-case cost. A variant
    without ``max_tokens`` has no upper bound, and the line says so rather than a total."""
    cost = estimate["cost_max"].sum(min_count=len(estimate))
    uncapped = [str(v) for v, r in estimate.iterrows()
                if r["calls"] and not r["max_completion_tokens"]]
    if math.isnan(cost):
        priced = "cost unknown (a model is missing from litellm's price table)"
    elif uncapped:
        priced = (f"at least <b>${cost:.4f}</b>: {esc(', '.join(uncapped))} set no max_tokens, "
                  "so what their answers cost has no upper bound")
    elif cost == 0:
        priced = "<b>$0</b> (the models are free to call)"
    else:
        priced = f"at most <b>${cost:.4f}</b>"
    per = " · ".join(f"{esc(str(v))} {int(r['calls'])}" for v, r in estimate.iterrows())
    return (f"<div class='wb-muted'>Estimate: <b>{int(estimate['calls'].sum())}</b> calls "
            f"({per}), ≈{int(estimate['prompt_tokens'].sum()):,} prompt tokens, up to "
            f"{int(estimate['max_completion_tokens'].sum()):,} completion tokens, {priced} "
            "(calls in the cache cost nothing).</div>")


def finished_kind(results: Any) -> tuple[str, str]:
    """How a finished run is shown: ``ok`` only with no failed call; ``error`` when no
    verdict can be trusted (``results.failures()``); with the most common errors named."""
    failures = results.failures()
    errors = results.errors["error"] if len(results.frame) else []
    if not failures and not len(errors):
        return "ok", ""
    common = Counter(str(e).splitlines()[0][:160] for e in errors).most_common(3)
    named = "; ".join(f"{count}× {text}" for text, count in common)
    text = (" ".join(f"{f}." for f in failures) + " ") if failures else ""
    if named:
        text += f"Most common errors: {named}. "
    return ("error" if failures else "warn"), text


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _relative(path: Path, directory: Path) -> str:
    try:
        return str(path.relative_to(directory.resolve()))
    except ValueError:
        return str(path)
