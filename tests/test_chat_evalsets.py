"""Chat-format eval sets: openai/evals rows (``input`` messages, ``ideal`` answers), Hugging
Face ``messages`` columns and ``save_to_disk`` folders, with the prompt around them."""

import json

import pytest

from workbench import Experiment
from workbench.errors import EvalSetError, SpecError
from workbench.evaluation.evalsets import EvalSet, Example
from workbench.evaluation.scorers import build_scorer
from workbench.prompts.templates import PromptTemplate

SYSTEM = "Answer with one word: positive or negative."
EVALS_ROWS = [  # openai/evals: `ideal` one answer or a list of acceptable ones
    {"input": [{"role": "user", "content": "I love this app"}], "ideal": ["positive", "good"]},
    {"input": [{"role": "user", "content": "I want a refund now"}], "ideal": "negative"},
    {"input": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
               {"role": "user", "content": "The screen arrived broken"}],
     "ideal": ["negative", "unhappy"]},
]


def chat_experiment(make_experiment, rows, column, expected):
    prompts = {"wrapped": {"messages": [{"role": "system", "content": SYSTEM},
                                        {"role": "user", "content": f"{{{{{column}}}}}"}]},
               "plain": {"template": f"{{{{{column}}}}}"}}
    return make_experiment(rows=rows, prompts=prompts, baseline="plain",
                           scorers=[{"type": "exact_match", "expected": expected},
                                    {"type": "contains", "expected": expected}])


def test_an_openai_evals_set_runs_with_the_prompt_around_the_conversation(
        make_experiment, llm_server):
    experiment = Experiment.from_yaml(chat_experiment(make_experiment, EVALS_ROWS, "input",
                                                      "ideal"))
    assert experiment.preview("wrapped", 2) == [
        {"role": "system", "content": SYSTEM}, *EVALS_ROWS[2]["input"]]
    assert experiment.preview("plain", 0) == EVALS_ROWS[0]["input"]
    assert llm_server.request_count == 0
    results = experiment.run(track=False, progress=False)
    sent = [r["messages"] for r in llm_server.requests if r["messages"][0]["role"] == "system"]
    assert sorted(m[-1]["content"] for m in sent) == sorted(
        row["input"][-1]["content"] for row in EVALS_ROWS)
    wrapped = results.frame[results.frame["variant"] == "wrapped"]
    assert wrapped["score.exact_match"].tolist() == [1.0, 1.0, 1.0]
    assert "one of 2 acceptable answers" in wrapped["reason.exact_match"].iloc[0]


def test_a_hugging_face_messages_column_is_the_conversation(make_experiment, llm_server):
    rows = [{"id": f"m{i}", "messages": row["input"], "label": "negative"}
            for i, row in enumerate(EVALS_ROWS[1:])]
    experiment = Experiment.from_yaml(chat_experiment(make_experiment, rows, "messages",
                                                      "label"))
    assert experiment.preview("wrapped", "m1")[1:] == rows[1]["messages"]
    results = experiment.run(track=False, progress=False)
    assert results.frame["error"].isna().all() and llm_server.request_count == 4


def test_a_malformed_conversation_is_an_error_before_any_call(make_experiment, llm_server):
    rows = [{"id": "a", "input": [{"role": "robot", "content": "hi"}], "ideal": "x"}]
    with pytest.raises(SpecError, match=r"example a: input\[0\] is not a chat message"):
        Experiment.from_yaml(chat_experiment(make_experiment, rows, "input", "ideal"))
    assert llm_server.request_count == 0


@pytest.mark.parametrize(("ideal", "output", "exact", "contains"), [
    (["positive", "good"], "Good.", 1.0, 1.0),
    (["positive", "good"], "It is good news", 0.0, 1.0),
    (["positive", "good"], "negative", 0.0, 0.0),
    ("positive", "Positive!", 1.0, 1.0),
])
def test_a_list_of_acceptable_answers_passes_on_any_of_them(ideal, output, exact, contains):
    example = Example("e", {"ideal": ideal})
    assert build_scorer("exact_match", {"expected": "ideal"})(output, example).value == exact
    scorer = build_scorer("contains", {"expected": "ideal", "whole_word": True})
    assert scorer(output, example).value == contains


def test_an_empty_list_of_answers_is_not_a_pass():
    with pytest.raises(ValueError, match="empty list"):
        build_scorer("exact_match", {"expected": "ideal"})("x", Example("e", {"ideal": []}))


def test_a_text_template_of_only_the_conversation_is_the_conversation():
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert PromptTemplate("{{ input }}").render(input=turns) == turns
    assert PromptTemplate("Q: {{input}}").render(input="x") == [{"role": "user",
                                                                 "content": "Q: x"}]


# ---- datasets folders --------------------------------------------------------------------
ROWS = [{"id": "a", "q": "one", "label": "x"}, {"id": "b", "q": "two", "label": "y"}]


def test_a_save_to_disk_dataset_loads(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "set"))
    evalset = EvalSet.from_file(tmp_path / "set")
    assert [e.id for e in evalset.examples] == ["a", "b"]
    assert evalset.to_pandas()["example_id"].tolist() == ["a", "b"]


def test_a_dataset_dict_loads_its_only_split_or_the_one_named(tmp_path):
    import datasets

    one = datasets.Dataset.from_list(ROWS)
    datasets.DatasetDict({"test": one}).save_to_disk(str(tmp_path / "single"))
    assert len(EvalSet.from_file(tmp_path / "single")) == 2
    both = datasets.DatasetDict({"train": one.select([0]), "test": one})
    both.save_to_disk(str(tmp_path / "both"))
    assert len(EvalSet.from_file(tmp_path / "both", split="train")) == 1
    with pytest.raises(EvalSetError, match=r"holds the splits \['train', 'test'\]"):
        EvalSet.from_file(tmp_path / "both")
    with pytest.raises(EvalSetError, match="has no split 'dev'"):
        EvalSet.from_file(tmp_path / "both", split="dev")


def test_an_experiment_names_the_split_of_a_dataset_dict(make_experiment, llm_server):
    import datasets

    folder = make_experiment()
    rows = [json.loads(line) for line in (folder / "data" / "tickets.jsonl").read_text()
            .splitlines()]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:4]),
                          "test": datasets.Dataset.from_list(rows)}).save_to_disk(
        str(folder / "data" / "hf"))
    text = (folder / "experiment.yaml").read_text().replace(
        "path: data/tickets.jsonl", "path: data/hf\n  split: train")
    (folder / "experiment.yaml").write_text(text)
    assert len(Experiment.from_yaml(folder).evalset) == 4


def test_the_regression_set_of_the_gate_takes_its_split_too(make_experiment, llm_server):
    import datasets

    from workbench.evaluation.gate import _regression_set

    folder = make_experiment(gate={"regression_set": {"path": "data/hf", "split": "train"}})
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:1]),
                          "test": datasets.Dataset.from_list(ROWS)}).save_to_disk(
        str(folder / "data" / "hf"))
    assert len(_regression_set(Experiment.from_yaml(folder))) == 1


def test_a_prompt_without_the_conversation_says_how_to_add_it(make_experiment, llm_server):
    rows = [{"id": "a", "messages": EVALS_ROWS[0]["input"], "label": "positive"}]
    prompts = {"p": {"messages": [{"role": "system", "content": SYSTEM}]}}
    with pytest.warns(UserWarning, match=r'add the message \{role: user, content: "\{\{messages'):
        Experiment.from_yaml(make_experiment(rows=rows, prompts=prompts, baseline="p"))


def test_a_conversation_ending_with_the_answer_is_a_warning(make_experiment, llm_server):
    rows = [{"id": "a", "messages": [{"role": "user", "content": "I love this app"},
                                     {"role": "assistant", "content": "positive"}],
             "label": "positive"}]
    with pytest.warns(UserWarning, match=r"1 conversation\(s\) in 'messages' end with an "
                                         "assistant turn"):
        experiment = Experiment.from_yaml(chat_experiment(make_experiment, rows, "messages",
                                                          "label"))
    assert len(experiment.warnings) == 1  # once, though two prompts send it


def test_a_dataset_dict_given_in_python_asks_for_a_split():
    import datasets

    both = datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS)})
    with pytest.raises(EvalSetError, match=r"holds the splits \['test'\]"):
        EvalSet(both, name="hf")
    assert len(EvalSet(both["test"], name="hf")) == 2


def test_an_empty_conversation_or_answer_list_is_missing(make_experiment, llm_server):
    rows = [{"id": "a", "input": EVALS_ROWS[0]["input"], "ideal": ["positive"]},
            {"id": "b", "input": [], "ideal": ["negative"]}]
    with pytest.raises(SpecError, match=r"1 example\(s\) .* no value for 'input'.*: b"):
        Experiment.from_yaml(chat_experiment(make_experiment, rows, "input", "ideal"))
    rows[1]["input"], rows[0]["ideal"] = EVALS_ROWS[1]["input"], []
    with pytest.raises(SpecError, match=r"no value for 'ideal'.*: a"):
        Experiment.from_yaml(chat_experiment(make_experiment, rows, "input", "ideal"))
    assert llm_server.request_count == 0
