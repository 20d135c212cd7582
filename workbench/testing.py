"""Helpers for a project's own pytest suite: the regression gate as an assertion.

    from workbench.testing import assert_no_regression

    def test_prompt_does_not_regress():
        assert_no_regression("experiments/support-triage", baseline="production")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .evaluation.gate import GateResult, check

__all__ = ["assert_no_regression"]


def assert_no_regression(experiment_dir: str | Path, baseline: str = "production", *,
                         candidate: str | None = None, **options: Any) -> GateResult:
    """Fail the test with the gate's report when the candidate regresses; else return it."""
    __tracebackhide__ = True  # pytest shows the report, not this frame
    result = check(experiment_dir, baseline=baseline, candidate=candidate, **options)
    if not result.passed:
        raise AssertionError(result.to_text())
    return result
