"""The command line: a thin layer that prints what the Python API returns."""

import pytest

from workbench.cli import main
from workbench.registry import alias_version


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
