"""Opt-in traces per call: what MLflow's evaluation and trace views list, one row per call."""

import json

import mlflow

from workbench import Experiment
from workbench.prompts.registry import client


def _call_traces(results, variant):
    run = client().get_run(results.run_ids[variant])
    return mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id,
                                filter_string="tag.`workbench.example_id` != ''",
                                return_type="list", include_spans=True)


def test_each_call_is_a_trace_with_inputs_output_scores_and_expectations(make_experiment):
    experiment = Experiment.from_yaml(make_experiment(run={"trace_calls": True}))
    results = experiment.run(progress=False)
    traces = _call_traces(results, "bare")
    assert len(traces) == 20
    by_example = {t.info.tags["workbench.example_id"]: t for t in traces}
    trace = by_example["t001"]
    row = results.frame[(results.frame["variant"] == "bare")
                        & (results.frame["example_id"] == "t001")].iloc[0]
    assert json.loads(trace.info.request_preview) == {"ticket": "I want a refund now (order 1)"}
    assert trace.info.response_preview == row["output"]
    (span,) = trace.data.spans
    assert span.inputs == {"ticket": "I want a refund now (order 1)"}
    assert span.outputs == {"output": row["output"]}
    found = {(a.name, type(a).__name__): a for a in trace.info.assessments}
    assert found[("exact_match", "Feedback")].value == row["score.exact_match"]
    assert found[("label", "Expectation")].value == "negative"
    assert found[("exact_match", "Feedback")].source.source_type == "CODE"


def test_without_the_option_a_variant_has_no_trace_per_call(make_experiment):
    results = Experiment.from_yaml(make_experiment()).run(progress=False)
    assert _call_traces(results, "bare") == []
