"""The notebook panels as plain objects: set values, click buttons, read what they show.

No kernel here, so handlers run synchronously and the panels' state is in their widgets'
values (see notes/testing-widgets.md). Runs go to the loopback model server.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench import Experiment

from .llm_server import Faults

ui = pytest.importorskip("workbench.ui")


@pytest.fixture
def experiment(make_experiment):
    return Experiment.from_yaml(make_experiment())


@pytest.fixture
def bench(experiment):
    return ui.Workbench(experiment, approver="tester", annotator="tester")


def _click_run(bench):
    bench.run.run_button.click()
    bench.run.wait(timeout=60)
    assert bench.session.results is not None, bench.run.status.value
    return bench


@pytest.fixture
def ran(bench):
    """A workbench after one finished run of 20 examples x 2 variants, logged to MLflow."""
    return _click_run(bench)


@pytest.fixture
def ran_quick(bench):
    """The same run without MLflow, for what needs neither the registry nor run ids."""
    bench.run.track.value = False
    return _click_run(bench)


def test_public_names_are_pinned():
    assert ui.__all__ == ["ABPanel", "AnnotatePanel", "CostPanel", "ModelsPanel",
                          "MonitorPanel", "PromotePanel", "PromptsPanel", "RagPanel",
                          "ResultsPanel", "RunPanel", "Session", "Workbench"]


def test_importing_workbench_does_not_import_ipywidgets():
    code = "import sys, workbench; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ---- Prompts ------------------------------------------------------------------------------
def test_prompts_show_each_variant_rendered_for_the_chosen_example(bench):
    prompts = bench.prompts
    assert list(prompts.editors) == ["bare", "guided"]
    assert prompts.editors["guided"].value.startswith("[system]\nAnswer with one word")
    prompts.example.value = "t001"
    assert "I want a refund now (order 1)" in prompts.previews["bare"].value
    assert "Sentiment of:" in prompts.previews["bare"].value
    assert "variables: ticket" in prompts.headers["bare"].value


def test_editing_a_prompt_updates_preview_tokens_and_marks_it_unsaved(bench):
    prompts = bench.prompts
    before = prompts.cost.value
    prompts.editors["bare"].value = "Classify the sentiment of this message, please: {{ticket}}"
    assert "Classify the sentiment" in prompts.previews["bare"].value
    assert "edited, not saved" in prompts.headers["bare"].value
    assert prompts.cost.value != before and "<b>40</b> calls" in prompts.cost.value


def test_a_broken_template_shows_the_problem_not_a_traceback(bench):
    prompts = bench.prompts
    prompts.editors["bare"].value = "{% if ticket %}{{ticket}}"
    assert "Jinja blocks" in prompts.previews["bare"].value
    assert "Traceback" not in prompts.previews["bare"].value
    prompts.editors["bare"].value = "About {{customer}}"
    assert "customer" in prompts.previews["bare"].value


def test_save_as_new_variant_writes_the_file_and_every_panel_sees_it(bench, experiment):
    prompts = bench.prompts
    prompts.editors["bare"].value = "Positive or negative?\n\n{{ticket}}"
    prompts.new_name.value = "binary"
    prompts.save_from.value = "bare"
    prompts.save_button.click()
    assert "Saved prompts/binary.yaml" in prompts.status.value, prompts.status.value
    assert (experiment.spec.directory / "prompts" / "binary.yaml").is_file()
    assert list(prompts.editors) == ["bare", "guided", "binary"]
    assert prompts.editors["bare"].value == "Sentiment of: {{ticket}}"  # back to the file
    assert "binary" in bench.run.plan.value and "<b>60</b> calls" in bench.run.plan.value


def test_saving_under_an_existing_name_is_refused_with_the_fix(bench):
    bench.prompts.new_name.value = "guided"
    bench.prompts.save_button.click()
    assert "exists" in bench.prompts.status.value and "wb-error" in bench.prompts.status.value


def test_word_diff_between_two_variants(bench):
    prompts = bench.prompts
    prompts.diff_a.value, prompts.diff_b.value = "editor:bare", "editor:guided"
    assert "<ins>" in prompts.diff.value and "<del>" in prompts.diff.value
    prompts.diff_b.value = "editor:bare"
    assert "identical" in prompts.diff.value


# ---- Models -------------------------------------------------------------------------------
def test_models_panel_adds_a_model_variant(bench):
    models = bench.models
    models.add_model("warm", model=bench.session.experiment.spec.models["fake"].model)
    row = models.rows.children[-1]
    row.temperature.value = 0.7
    models.apply_button.click()
    exp = bench.session.experiment
    assert [v.name for v in exp.variants] == ["bare.fake", "bare.warm", "guided.fake",
                                              "guided.warm"]
    assert exp.spec.models["warm"].params["temperature"] == 0.7
    assert exp.spec.baseline == "bare.fake"
    assert "4 variants" in models.status.value


def test_models_panel_refuses_two_rows_with_one_name(bench):
    bench.models.add_model("fake")
    bench.models.apply_button.click()
    assert "rename one" in bench.models.status.value
    assert list(bench.session.experiment.spec.models) == ["fake"]


# ---- Run ----------------------------------------------------------------------------------
def test_run_defaults_come_from_the_experiment(experiment):
    run = ui.RunPanel(experiment, limit=8)
    assert (run.limit.value, run.limit.max) == (8, 20)
    assert (run.repeats.value, run.concurrency.value) == (1, 4)
    assert run.evalset.label == "data/tickets.jsonl"
    assert "<b>16</b> calls" in run.plan.value
    run.repeats.value = 3
    assert "<b>48</b> calls" in run.plan.value


def test_run_shows_progress_and_fills_results_ab_and_promote(ran):
    run = ran.run
    assert run.bar.value == run.bar.max == 40
    assert "<b>40</b> / 40 calls" in run.counters.value and "<b>0</b> errors" in run.counters.value
    assert "Finished 40 calls" in run.status.value and "Logged to MLflow" in run.status.value
    assert ran.tabs.selected_index == ui.Workbench.TITLES.index("Results")
    assert "bare" in ran.results.summary.value and "guided" in ran.results.summary.value
    assert ran.results.chart.value.startswith("<svg")
    assert "better" in ran.ab.verdict.value
    assert not ran.promote.promote_button.disabled


def test_run_does_not_block_and_cancel_stops_it(bench, llm_server):
    llm_server.latency = 0.3
    bench.run.concurrency.value = 1
    bench.run.start()
    assert bench.run.running  # start() returned while the calls go on
    bench.run.cancel_button.click()
    bench.run.wait(timeout=30)
    assert not bench.run.running
    assert "Cancelled after" in bench.run.status.value
    assert bench.run.bar.value < 40
    assert bench.session.results is None  # a cancelled run is not shown as a result


def test_a_second_run_is_served_from_the_cache(ran_quick, llm_server):
    llm_server.reset()
    ran_quick.run.run_button.click()
    ran_quick.run.wait(timeout=60)
    assert llm_server.request_count == 0
    assert "<b>40</b> cache hits" in ran_quick.run.counters.value


def test_a_run_that_cannot_start_says_why(make_experiment):
    folder = make_experiment(models={"keyed": {"model": "openai/test-model",
                                               "api_key_env": "WB_TEST_MISSING_KEY"}})
    panel = ui.RunPanel(Experiment.from_yaml(folder))
    panel.start()
    panel.wait(timeout=30)
    assert "WB_TEST_MISSING_KEY" in panel.status.value
    assert "Traceback" not in panel.status.value and not panel.run_button.disabled


def test_failed_calls_are_counted_and_shown(bench, llm_server):
    llm_server.faults = Faults(server_error=0.4)
    bench.run.track.value = False
    bench.run.start()
    bench.run.wait(timeout=60)
    assert "Finished 40 calls" in bench.run.status.value, bench.run.status.value
    errors = len(bench.session.results.errors)
    assert errors > 0
    assert f"<b>{errors}</b> errors" in bench.run.counters.value
    results = bench.results
    results.filter.value = "errors"
    assert len(results.example.options) > 0
    assert "InternalServerError" in results.example_view.value


# ---- Results ------------------------------------------------------------------------------
def test_results_viewer_shows_outputs_side_by_side_with_differences(ran_quick):
    results = ran_quick.results
    assert [label for label, _ in results.filter.options][0] == "All (20)"
    results.filter.value = "disagreements"
    assert results.example.options, "the fake model answers the two prompts differently"
    view = results.example_view.value
    assert "bare (baseline)" in view and "guided" in view
    assert "<ins>" in view or "<del>" in view
    assert "exact_match ✓" in view or "exact_match ✗" in view
    first = results.example.value
    results.next.click()
    assert results.example.value != first or len(results.example.options) == 1


def test_a_new_variant_joins_the_viewer_after_the_next_run(ran_quick):
    bench = ran_quick
    bench.prompts.new_name.value = "terse"
    bench.prompts.save_button.click()
    bench.run.start()
    bench.run.wait(timeout=60)
    assert "terse" in bench.results.summary.value
    assert "terse" in bench.results.example_view.value  # not the previous run's view


def test_results_link_each_mlflow_run(ran):
    runs = ran.session.results.run_ids
    for run_id in runs.values():
        assert f"#/runs/{run_id}" in ran.results.runs.value
    assert "all variants" in ran.results.runs.value


def _row(variant, example_id, score, error=None):
    return {"variant": variant, "prompt": variant, "model": "m", "example_id": example_id,
            "repeat": 0, "output": None if error else "positive", "error": error,
            "prompt_tokens": 5, "completion_tokens": 1, "cost": 0.0, "latency_s": 0.1,
            "cached": False, "score.exact_match": score, "reason.exact_match": ""}


def test_results_panel_reads_a_run_where_every_call_of_a_variant_failed():
    from workbench.results import Results

    rows = [_row("a", f"e{i}", 1.0) for i in range(3)]
    rows += [_row("b", f"e{i}", float("nan"), error="boom (500)") for i in range(3)]
    rows += [_row("a", "e3", float("nan"), error="baseline down"), _row("b", "e3", 1.0)]
    panel = ui.ResultsPanel(Results.from_rows(rows, metrics={"exact_match": "binary"},
                                              primary="exact_match"))
    assert panel.chart.value.startswith("<svg")
    assert "<td>b</td>" in panel.summary.value
    panel.filter.value = "errors"
    assert "boom (500)" in panel.example_view.value
    panel.example.value = ("e3", 0)
    assert "baseline down" in panel.example_view.value and "positive" in panel.example_view.value


def test_results_panel_alone_with_nothing_to_show():
    panel = ui.ResultsPanel(ui.Session())
    assert "No results yet" in panel.header.value
    with pytest.raises(TypeError, match="Experiment, Results or ComparisonReport"):
        ui.ResultsPanel("results.csv")


# ---- A/B and Promote ----------------------------------------------------------------------
def test_ab_panel_recompares_when_the_pair_changes(ran_quick):
    ab = ran_quick.ab
    assert (ab.a.value, ab.b.value) == ("bare", "guided")
    ab.a.value, ab.b.value = "guided", "bare"
    assert ran_quick.session.report.pairs[0].a == "guided"
    assert "Verdict" in ab.report.value and "<svg" in ab.report.value
    ab.b.value = "guided"
    assert "two different variants" in ab.status.value


def test_promoting_the_winner_needs_no_reason(ran):
    promote = ran.promote
    report = ran.session.report
    assert report.winner == "guided", report.verdict
    assert promote.variant.value == "guided"
    assert "supports this promotion" in promote.hint.value
    promote.alias.value = "staging"
    promote.promote_button.click()
    assert "Promoted <b>guided</b>" in promote.status.value, promote.status.value
    assert "@staging" in promote.status.value


def test_promoting_against_the_verdict_needs_a_written_reason(ran):
    promote = ran.promote
    promote.variant.value = "bare"
    assert "write the reason" in promote.hint.value
    promote.promote_button.click()
    assert "wb-error" in promote.status.value and "reason" in promote.status.value
    promote.reason.value = "the guided prompt is too long for the production context"
    promote.promote_button.click()
    promote.confirm.yes.click()  # moving production asks first
    assert "Promoted <b>bare</b>" in promote.status.value
    assert "too long for the production context" in promote.status.value

    from workbench.prompts.registry import alias_version, load

    version = alias_version("triage", "production")
    tags = load("triage", version=version).tags
    assert tags["workbench.promoted.production.reason"].startswith("the guided prompt")


# ---- Annotate -----------------------------------------------------------------------------
def test_annotate_explains_what_it_needs_before_a_run(bench):
    assert bench.annotate.form.layout.display == "none"
    assert bench.annotate.message.value  # a sentence, not an empty panel


def test_annotations_are_recorded_through_the_feedback_api(ran):
    feedback = pytest.importorskip("workbench.evaluation.feedback",
                                   reason="the human-feedback API is not installed yet")
    annotate = ran.annotate
    annotate.variant.value = "bare"
    first = annotate.example.value
    annotate.thumbs.value = False
    annotate.score.value = 2
    annotate.comment.value = "rambles"
    annotate.save_button.click()
    assert "Saved feedback" in annotate.status.value, annotate.status.value
    assert annotate.example.value != first
    recorded = feedback.load(ran.session.results.run_ids["parent"])
    assert len(recorded) == 1
    assert recorded.iloc[0]["comment"] == "rambles"
    assert "vs people on 1 example" in annotate.agreement.value, annotate.agreement.value


def test_panels_stay_usable_while_a_run_updates_them(bench, llm_server):
    """The run's progress listener fires on the worker thread while the user edits."""
    llm_server.latency = 0.05
    bench.run.track.value = False
    bench.run.start()
    bench.prompts.editors["bare"].value = "Quick: {{ticket}}"
    assert bench.run.running and "Quick:" in bench.prompts.previews["bare"].value
    bench.run.wait(timeout=60)
    assert bench.session.results is not None


def test_results_show_classes_and_flag_a_chance_level_variant(ran_quick):
    classes = ran_quick.results.classes.value
    assert "exact_match: classes" in classes and "balanced accuracy" in classes
    assert "recall negative" in classes and "majority baseline" in classes
    # bare is right on half of a balanced set (chance level); guided on all of it
    assert "bare is degenerate: exact_match 0.500 is not significantly above" in classes
    assert "guided is degenerate" not in classes
    assert classes.count("<th>answer</th>") == 2  # one confusion matrix per variant


def test_a_protected_alias_says_a_request_was_recorded_not_promoted(ran, project):
    from workbench.prompts.registry import alias_version, pending_requests

    (project / "workbench.yaml").write_text("registry:\n  protected: [production]\n")
    promote = ran.promote
    promote.alias.value = "production"
    promote.promote_button.click()
    status = promote.status.value
    assert "Request recorded, approval needed" in status and "Promoted" not in status
    assert "@production is protected and has not moved" in status
    assert "workbench approve triage --alias production" in status
    assert alias_version("triage", "production") is None
    assert [r.version for r in pending_requests("triage")] == [
        ran.session.results.prompt_versions["guided"]]


def test_a_degenerate_winner_needs_a_reason_in_the_promote_panel(bench, llm_server):
    # guided answers "positive" to everything: 0.50 on a balanced set beats bare's 0.00
    llm_server.responder = lambda body: (
        "positive" if "one word" in str(body["messages"]) else "It is hard to say.")
    _click_run(bench)
    promote = bench.promote
    assert bench.session.report.winner == "guided" and promote.variant.value == "guided"
    assert "Caveat" in promote.verdict.value and "wb-warn" in promote.verdict.value
    assert "guided is degenerate: answers nearly constant" in promote.hint.value
    promote.alias.value = "staging"
    promote.promote_button.click()
    assert "wb-error" in promote.status.value and "degenerate" in promote.status.value
    promote.reason.value = "smoke-testing the serving path"
    promote.promote_button.click()
    assert "Promoted <b>guided</b>" in promote.status.value, promote.status.value

    from workbench.prompts.registry import history

    assert history("triage").iloc[-1]["evidence"]["degenerate"].startswith("answers nearly")
