"""The command line: a thin layer that prints what the Python API returns."""

import re
import signal

import pytest

from workbench import Experiment
from workbench.cli import main
from workbench.prompts.registry import alias_version


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "promote" in out and "examples:" in out


def test_run_prints_summary_comparison_and_runs_then_promotes(make_experiment, capsys):
    folder = make_experiment()
    assert main(["run", str(folder), "--promote", "production", "--approver", "ci"]) == 0
    out = capsys.readouterr().out
    assert "exact_match" in out and "[" in out  # means with confidence intervals
    assert "p=" in out or "p_adj" in out or "p-value" in out
    assert "parent run" in out and "prompts:/triage/" in out
    assert "promoted guided" in out
    assert alias_version("triage", "production") is not None


def test_run_with_a_bad_experiment_exits_1_with_the_field(make_experiment, capsys):
    folder = make_experiment(primary_metric="f1")
    assert main(["run", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "primary_metric" in err and "fix:" in err


def test_promote_command(make_experiment, capsys):
    folder = make_experiment()
    assert main(["run", str(folder)]) == 0
    assert main(["promote", "triage", "--version", "1", "--alias", "staging"]) == 0
    assert alias_version("triage", "staging") == 1
    assert main(["promote", "triage", "--version", "9", "--alias", "staging"]) == 1
    assert "cannot promote triage v9" in capsys.readouterr().err


def test_estimate_prints_calls_and_cost_and_sends_nothing(make_experiment, llm_server, capsys):
    folder = make_experiment()
    text = (folder / "experiment.yaml").read_text().replace(
        "num_retries: 0", "num_retries: 0\n    input_cost_per_token: 0.001")
    (folder / "experiment.yaml").write_text(text)
    assert main(["run", str(folder), "--estimate"]) == 0
    assert "estimate: 40 calls to send (0 cached), at most $" in capsys.readouterr().out
    assert llm_server.request_count == 0
    assert main(["run", str(folder), "--max-cost", "0.001"]) == 1
    assert "over max_cost" in capsys.readouterr().err
    assert llm_server.request_count == 0


def test_compare_recomputes_the_report_of_a_logged_run(make_experiment, capsys):
    folder = make_experiment()
    assert main(["run", str(folder)]) == 0
    parent = next(line.split()[-1] for line in capsys.readouterr().out.splitlines()
                  if "parent run" in line)
    assert main(["compare", parent, "bare", "guided", "--correction", "bh",
                 "--non-inferiority", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "guided better than bare on exact_match" in out
    assert "Benjamini-Hochberg correction" in out
    assert main(["compare", parent, "bare", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["compare", "0123456789abcdef0123456789abcdef"]) == 1


def test_ctrl_c_after_the_run_was_logged_reports_success(make_experiment, monkeypatch, capsys):
    track = Experiment._track

    def track_then_interrupt(self, results, evalset, **options):
        track(self, results, evalset, **options)
        signal.raise_signal(signal.SIGINT)  # the signal lands while the MLflow writes finish

    monkeypatch.setattr(Experiment, "_track", track_then_interrupt)
    assert main(["run", str(make_experiment())]) == 0
    captured = capsys.readouterr()
    assert "parent run" in captured.out and "guided better than bare" in captured.out
    assert "interrupted after the run had finished and was logged: nothing was lost" in (
        captured.out)
    assert "run the same command to resume" not in captured.err


def test_ctrl_c_during_the_calls_reports_the_interruption(make_experiment, monkeypatch, capsys):
    def interrupt_on_the_third_call(self, **options):
        self.progress.listeners.append(
            lambda progress: progress.done == 3 and signal.raise_signal(signal.SIGINT))
        return run(self, **options)

    run = Experiment.run
    monkeypatch.setattr(Experiment, "run", interrupt_on_the_third_call)
    assert main(["run", str(make_experiment())]) == 130
    captured = capsys.readouterr()
    assert "parent run" not in captured.out
    assert "interrupted: finished calls are cached" in captured.err


def test_a_run_where_every_call_of_a_variant_fails_exits_1_with_the_causes(
        make_experiment, llm_server, capsys):
    from tests.llm_server import Faults

    folder = make_experiment()
    llm_server.faults = Faults(server_error=1.0)
    assert main(["run", str(folder), "--no-track"]) == 1
    captured = capsys.readouterr()
    assert "failed calls: 40 of 40" in captured.out
    assert re.search(r"\n\s+40 × openai/test-model: \w+Error \(500\)", captured.out)
    assert "error: every call of 'bare' failed (20 calls)" in captured.err
    assert "error: every call of 'guided' failed" in captured.err


def test_the_command_line_says_each_problem_once(make_experiment, llm_server, recwarn, capsys):
    # Python's warning would repeat the printed line, pointing at a line of asyncio
    from tests.llm_server import Faults
    from workbench.errors import WorkbenchWarning

    folder = make_experiment(prompts={"p": {"messages": [
        {"role": "user", "content": "{{ticket}} {label}"}]}}, baseline="p")
    llm_server.faults = Faults(server_error=1.0)
    assert main(["run", str(folder), "--no-track"]) == 1
    err = capsys.readouterr().err
    assert err.count("every call of 'p' failed") == 1
    assert err.count("single braces is sent literally") == 1
    assert not [w for w in recwarn if issubclass(w.category, WorkbenchWarning)]


def test_a_scorer_that_produced_no_score_exits_1(make_experiment, llm_server, capsys):
    judge = {"model": "openai/test-model", "api_base": llm_server.base_url, "num_retries": 0}
    folder = make_experiment(scorers=[
        {"type": "exact_match", "expected": "label"},
        {"type": "correctness", "expected": "label", "model": judge}])  # answers: no verdict
    assert main(["run", str(folder), "--no-track"]) == 1
    err = capsys.readouterr().err
    assert "scorer 'correctness' produced no score for 'bare' (20 answered calls" in err
    assert "exact_match" not in err


def test_failed_calls_are_grouped_by_cause_with_counts(capsys):
    import pandas as pd

    from workbench.cli.run import _print_errors
    from workbench.results import Results

    errors = ([f"m: RateLimitError (429): retry in {n} ms" for n in range(7)]
              + ["m: Timeout: no answer in 120 s"] * 2 + [None] * 3)
    frame = pd.DataFrame({"variant": "v", "error": errors, "cached": False})
    _print_errors(Results(frame, metrics={}, primary="x"))
    out = capsys.readouterr().out
    assert out.splitlines() == ["failed calls: 9 of 12",
                                "      7 × m: RateLimitError (429): retry in 0 ms",
                                "      2 × m: Timeout: no answer in 120 s"]
