"""What the panels say is what happened: keys checked before a call, the run's estimate and
timing, a run with errors not shown as clean, guardrails and small samples in the A/B
banner, theme colours only, and one experiment object shared with the notebook."""

from __future__ import annotations

import json
import math
import re

import pytest

from workbench import Experiment
from workbench.evaluation.scorers import scorer
from workbench.results import Results

from .llm_server import Faults

ui = pytest.importorskip("workbench.ui")


@scorer(name="short", kind="binary")
def short(output, example):
    return len(output) < 40


def _run(panel, **values):
    panel.track.value = False
    for name, value in values.items():
        getattr(panel, name).value = value
    panel.start()
    panel.wait(timeout=60)
    return panel


# ---- keys ---------------------------------------------------------------------------------
def test_a_missing_key_is_named_when_the_panel_opens_and_nothing_is_sent(make_experiment,
                                                                        llm_server):
    folder = make_experiment(models={"keyed": {"model": "openai/test-model",
                                               "api_base": llm_server.base_url,
                                               "api_key_env": "WB_TEST_MISSING_KEY"}})
    panel = ui.RunPanel(Experiment.from_yaml(folder))
    assert "WB_TEST_MISSING_KEY" in panel.status.value  # before anyone presses Run
    panel.start()
    assert not panel.running  # refused before a thread or a call
    assert "Could not start the run" in panel.status.value
    assert "WB_TEST_MISSING_KEY" in panel.status.value
    assert llm_server.request_count == 0


def test_the_key_warning_goes_once_the_key_is_set(make_experiment, llm_server, monkeypatch):
    folder = make_experiment(models={"keyed": {"model": "openai/test-model",
                                               "api_base": llm_server.base_url,
                                               "api_key_env": "WB_TEST_LATE_KEY"}})
    exp = Experiment.from_yaml(folder)
    bench = ui.Workbench(exp)
    assert "WB_TEST_LATE_KEY" in bench.run.status.value
    monkeypatch.setenv("WB_TEST_LATE_KEY", "sk-test")
    bench.session.experiment = Experiment.from_yaml(folder)
    assert bench.run.status.value == ""


# ---- estimate, time, errors -----------------------------------------------------------------
def test_a_run_shows_its_estimate_elapsed_time_and_eta(make_experiment):
    panel = _run(ui.RunPanel(Experiment.from_yaml(make_experiment())), limit=5)
    assert "Estimate: <b>10</b> calls (bare 5 · guided 5)" in panel.estimate.value
    assert "prompt tokens" in panel.estimate.value
    assert re.search(r"elapsed \d+ s · done", panel.counters.value), panel.counters.value
    assert "bare <b>5</b>/5 · guided <b>5</b>/5" in panel.counters.value  # each variant's calls
    assert panel.bar.bar_style == "success" and "wb-ok" in panel.status.value


def test_progress_counts_each_variants_calls_and_errors():
    from workbench.runner import Progress

    progress = Progress()
    progress.variants = {"bare": [0, 2, 0], "guided": [0, 2, 0]}
    progress._update({"variant": "guided", "error": "RateLimited", "cached": False, "cost": 0.0})
    progress._update({"variant": "bare", "error": None, "cached": True, "cost": 0.0})
    assert progress.variants == {"bare": [1, 2, 0], "guided": [1, 2, 1]}
    assert (progress.done, progress.errors, progress.cache_hits) == (2, 1, 1)


def test_the_estimate_is_shown_before_run_and_follows_the_settings(make_experiment):
    import time

    panel = ui.RunPanel(Experiment.from_yaml(make_experiment()))

    def shows(text):
        deadline = time.monotonic() + 30
        while text not in panel.estimate.value and time.monotonic() < deadline:
            time.sleep(0.05)
        return text in panel.estimate.value

    assert shows("Estimate: <b>40</b> calls (bare 20 · guided 20)"), panel.estimate.value
    panel.limit.value = 3
    assert shows("Estimate: <b>6</b> calls"), panel.estimate.value


@pytest.mark.parametrize("max_out, cost, says", [
    (800, 0.012, "at most <b>$0.0120</b>"),
    (0, 0.002, "at least <b>$0.0020</b>: hosted set no max_tokens"),
    (800, 0.0, "<b>$0</b> (the models are free to call)"),
    (800, math.nan, "cost unknown"),
])
def test_the_estimate_never_shows_a_bound_it_does_not_have(max_out, cost, says):
    import pandas as pd

    from workbench.ui.run import estimate_html

    table = pd.DataFrame([{"variant": "hosted", "calls": 10, "prompt_tokens": 500,
                           "max_completion_tokens": max_out, "cost_max": cost}]).set_index(
        "variant")
    assert says in estimate_html(table)


def test_the_eta_is_the_mean_call_time_times_the_calls_left(make_experiment):
    import time

    from workbench.runner import Progress

    panel = ui.RunPanel(Experiment.from_yaml(make_experiment()))
    panel._started = time.monotonic() - 10  # one call in ten seconds, three to go
    assert re.search(r"elapsed 1\d s · about 3\d s left",
                     panel._counter_text(Progress(total=4, done=1)))
    assert "ETA after the first call" in panel._counter_text(Progress(total=4, done=0))


def test_a_finished_run_with_errors_is_not_green_and_names_the_common_error(make_experiment,
                                                                         llm_server):
    llm_server.faults = Faults(server_error=0.4)
    panel = _run(ui.RunPanel(Experiment.from_yaml(make_experiment())))
    assert panel.session.results.errors.shape[0] > 0
    assert panel.bar.bar_style == "warning"
    assert "wb-warn" in panel.status.value and "wb-ok" not in panel.status.value
    assert "Most common errors:" in panel.status.value
    assert "InternalServerError" in panel.status.value


def test_a_run_where_a_variant_always_failed_is_red():
    from workbench.ui.run import finished_kind

    rows = [_row("a", f"e{i}", 1.0) for i in range(3)]
    rows += [_row("b", f"e{i}", math.nan, error="AuthenticationError: bad key") for i in range(3)]
    kind, text = finished_kind(Results.from_rows(rows, metrics={"exact_match": "binary"},
                                                 primary="exact_match"))
    assert kind == "error"
    assert "every call of 'b' failed" in text and "3× AuthenticationError: bad key" in text


# ---- eval set switch and the shared experiment ----------------------------------------------
def test_switching_the_eval_set_keeps_notebook_scorers(make_experiment):
    folder = make_experiment()
    rows = [json.loads(line) for line in (folder / "data/tickets.jsonl").read_text().splitlines()]
    (folder / "data/other.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    exp = Experiment(Experiment.from_yaml(folder).spec, extra_scorers=[short])
    bench = ui.Workbench(exp)
    other = next(value for label, value in bench.run.evalset.options if "other" in label)
    bench.run.evalset.value = other
    assert bench.run.evalset_status.value == ""
    switched = bench.experiment
    assert switched is not exp and len(switched.evalset) == 6
    assert "short" in switched.metrics
    bench.run.track.value = False
    bench.run.start()
    results = bench.run.wait(timeout=60)
    assert "score.short" in results.frame.columns and len(results.frame) == 12


def test_a_bad_eval_set_is_reported_next_to_its_dropdown(make_experiment):
    folder = make_experiment()
    (folder / "data/broken.jsonl").write_text("{not json\n")
    panel = ui.RunPanel(Experiment.from_yaml(folder))
    before = panel.evalset.value
    panel.evalset.value = next(v for label, v in panel.evalset.options if "broken" in label)
    assert "Could not use that eval set" in panel.evalset_status.value
    assert panel.evalset.value == before and panel.status.value == ""


def test_the_notebook_and_the_panels_share_one_experiment_and_its_results(make_experiment):
    exp = Experiment.from_yaml(make_experiment())
    bench = ui.Workbench(exp, limit=4)
    assert bench.experiment is exp
    bench.run.track.value = False
    bench.run.start()
    results = bench.run.wait(timeout=60)
    assert bench.last_results is results is exp.last_results
    assert bench.comparison is bench.session.report is not None
    # a run made in code shows in every tab once assigned
    code_run = exp.run(limit=3, track=False, progress=False)
    bench.last_results = code_run
    assert bench.session.results is code_run
    assert "6 calls" in bench.results.header.value
    # an edit in the tabs is the experiment the notebook reads back
    bench.prompts.new_name.value = "terse"
    bench.prompts.save_button.click()
    assert "terse" in [v.name for v in bench.experiment.variants]


# ---- A/B banner ---------------------------------------------------------------------------
def _row(variant, example_id, score, error=None, **scores):
    row = {"variant": variant, "prompt": variant, "model": "m", "example_id": example_id,
           "repeat": 0, "output": None if error else "positive", "error": error,
           "prompt_tokens": 5, "completion_tokens": 1, "cost": 0.0, "latency_s": 0.1,
           "cached": False, "score.exact_match": score, "reason.exact_match": ""}
    for name, value in scores.items():
        row[f"score.{name}"], row[f"reason.{name}"] = value, ""
    return row


def _results(n, a_scores, b_scores, safe_a=None, safe_b=None):
    rows = []
    for i in range(n):
        extra_a = {"safe": safe_a[i]} if safe_a else {}
        extra_b = {"safe": safe_b[i]} if safe_b else {}
        rows.append(_row("a", f"e{i}", a_scores[i], **extra_a))
        rows.append(_row("b", f"e{i}", b_scores[i], **extra_b))
    metrics = {"exact_match": "binary", **({"safe": "binary"} if safe_a else {})}
    return Results.from_rows(rows, metrics=metrics, primary="exact_match", baseline="a",
                             guardrails=("safe",) if safe_a else ())


def test_the_banner_names_a_guardrail_regression_not_only_the_primary_metric():
    n = 40
    results = _results(n, [0.0] * n, [1.0] * n, safe_a=[1.0] * n, safe_b=[0.0] * n)
    panel = ui.ABPanel(results.compare("a", "b"))
    assert "wb-ok" not in panel.verdict.value
    assert "b regresses on guardrail safe" in panel.verdict.value
    assert "1.000 → 0.000" in panel.verdict.value


def test_a_winner_worse_on_another_metric_is_not_green_without_guardrails_set():
    n = 40
    results = _results(n, [0.0] * n, [1.0] * n, safe_a=[1.0] * n, safe_b=[0.0] * n)
    results.guardrails = ()
    panel = ui.ABPanel(results.compare("a", "b"))
    assert "wb-ok" not in panel.verdict.value
    assert "b is significantly worse on safe" in panel.verdict.value


def test_a_clean_winner_is_green():
    n = 40
    results = _results(n, [0.0] * n, [1.0] * n, safe_a=[1.0] * n, safe_b=[1.0] * n)
    panel = ui.ABPanel(results.compare("a", "b"))
    assert "wb-ok" in panel.verdict.value and "<b>b</b> is the better variant" in \
        panel.verdict.value
    assert "guardrail" not in panel.verdict.value


def test_a_sample_too_small_to_test_says_so_in_the_banner():
    results = _results(3, [0.0] * 3, [1.0] * 3)
    panel = ui.ABPanel(results.compare("a", "b"))
    assert "only 3 paired example(s)" in panel.verdict.value
    assert "wb-warn" in panel.verdict.value


# ---- theme --------------------------------------------------------------------------------
_HEX = re.compile(r"#[0-9a-fA-F]{3,8}\b")
_FALLBACK = re.compile(r"var\(--jp-[\w-]+, #[0-9a-fA-F]{3,8}\)")


def _html_of(widget):
    values = [getattr(widget, "value", None)]
    for child in getattr(widget, "children", ()):
        values.extend(_html_of(child))
    return [v for v in values if isinstance(v, str)]


def test_every_colour_the_panels_emit_is_a_theme_variable(make_experiment):
    bench = ui.Workbench(Experiment.from_yaml(make_experiment()), limit=6)
    bench.run.track.value = False
    bench.run.start()
    bench.run.wait(timeout=60)
    shown = "\n".join(_html_of(bench.title) + _html_of(bench.run) + _html_of(bench.results)
                      + _html_of(bench.ab))
    assert "<svg" in shown and "var(--jp-ui-font-color1" in shown
    assert "forest plot of differences" not in shown  # redrawn as a themed SVG
    leftover = _HEX.findall(_FALLBACK.sub("", shown))
    assert not leftover, leftover[:10]
