"""The examples × variants grid: filtering and sorting as plain functions over the results
frame, then the widget as a thin layer (pages, diff toggle, colours from the theme)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

ui = pytest.importorskip("workbench.ui")

from workbench.results import Results  # noqa: E402
from workbench.ui.grid import GridView, grid_masks, grid_rows, grid_table, page_html  # noqa: E402

NAN = math.nan


def _frame(scores: dict[str, list[float]], errors: dict[tuple[str, int], str] | None = None,
           outputs: dict[tuple[str, int], str] | None = None) -> pd.DataFrame:
    rows = []
    for variant, column in scores.items():
        for i, score in enumerate(column):
            error = (errors or {}).get((variant, i))
            rows.append({"variant": variant, "prompt": variant, "model": "m",
                         "example_id": f"e{i}", "repeat": 0,
                         "output": None if error else (outputs or {}).get((variant, i),
                                                                          f"{variant} says {i}"),
                         "error": error, "prompt_tokens": 5, "completion_tokens": 1,
                         "cost": 0.0, "latency_s": 0.1, "cached": False,
                         "score.exact_match": NAN if error else score,
                         "reason.exact_match": ""})
    return pd.DataFrame(rows)


@pytest.fixture
def table():
    # e0 all equal · e1 b regressed · e2 c improved · e3 b errored · e4 b worse, c better
    frame = _frame({"base": [1, 1, 0, 1, 0.5], "b": [1, 0, 0, 1, 0.0],
                    "c": [1, 1, 1, 1, 1.0]}, errors={("b", 3): "RateLimitError: 429"})
    return grid_table(frame, primary="exact_match", kinds={"exact_match": "continuous"},
                      baseline="base")


@pytest.mark.parametrize("which, expected", [
    ("all", [0, 1, 2, 3, 4]),
    ("regressed", [1, 4]),
    ("improved", [2, 4]),
    ("errors", [3]),
    ("disagree", [1, 2, 4]),
])
def test_filters_compare_each_variant_with_the_baseline(table, which, expected):
    assert list(grid_rows(table, which)) == expected


def test_an_errored_call_is_not_counted_as_a_regression_but_as_an_error(table):
    masks = grid_masks(table)
    assert not masks["regressed"][3] and masks["errors"][3] and not masks["disagree"][3]


@pytest.mark.parametrize("sort, expected", [
    ("example", [0, 1, 2, 3, 4]),
    ("spread", [1, 2, 4, 0, 3]),     # spread 1, 1, 1, then 0, 0 (ties keep eval set order)
    ("baseline", [2, 4, 0, 1, 3]),   # baseline 0, 0.5, then 1s
    ("b", [1, 2, 4, 0, 3]),          # b's lowest first; its errored row (no score) last
])
def test_sorting(table, sort, expected):
    assert list(grid_rows(table, "all", sort)) == expected


def test_filter_and_sort_combine(table):
    assert list(grid_rows(table, "disagree", "baseline")) == [2, 4, 1]


@pytest.mark.parametrize("candidate, which, expected", [
    ("b", "regressed", [1, 4]),
    ("b", "improved", []),
    ("b", "errors", [3]),
    ("b", "disagree", [1, 4]),
    ("c", "improved", [2, 4]),
    ("c", "regressed", []),
    ("c", "errors", []),
])
def test_one_candidate_against_the_baseline(table, candidate, which, expected):
    assert list(grid_rows(table, which, candidate=candidate)) == expected


def test_bad_filter_or_sort_names_the_choices(table):
    with pytest.raises(ValueError, match="regressed"):
        grid_rows(table, "worse")
    with pytest.raises(ValueError, match="spread"):
        grid_rows(table, "all", "nope")


def test_the_baseline_defaults_to_the_first_variant():
    frame = _frame({"x": [1, 0], "y": [0, 0]})
    table = grid_table(frame, primary="exact_match", kinds={"exact_match": "binary"})
    assert table.baseline == "x" and list(grid_rows(table, "regressed")) == [0]


def test_repeats_are_separate_rows_in_eval_set_order():
    frame = pd.concat([_frame({"a": [1, 0], "b": [1, 1]}).assign(repeat=r) for r in (0, 1)])
    table = grid_table(frame, primary="exact_match", kinds={"exact_match": "binary"})
    assert list(table.score.index) == [("e0", 0), ("e1", 0), ("e0", 1), ("e1", 1)]
    assert list(grid_rows(table, "improved")) == [1, 3]


def test_page_shows_raw_outputs_or_the_diff_against_the_baseline():
    frame = _frame({"base": [1], "new": [0]},
                   outputs={("base", 0): "the cat sat", ("new", 0): "the dog sat"})
    table = grid_table(frame, primary="exact_match", kinds={"exact_match": "binary"})
    raw = page_html(table, np.array([0]))
    assert "the dog sat" in raw and "<ins>" not in raw
    diff = page_html(table, np.array([0]), diff=True)
    assert "<del>cat</del><ins>dog</ins>" in diff
    assert "base (baseline)" in diff and "exact_match ✗" in diff


def test_cells_are_coloured_from_the_theme_and_escaped():
    frame = _frame({"a": [1], "b": [0]}, outputs={("b", 0): "<script>x</script>"})
    html = page_html(grid_table(frame, primary="exact_match",
                                kinds={"exact_match": "binary"}), np.array([0]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "var(--jp-success-color1" in html and "var(--jp-error-color1" in html
    assert not re.findall(r"#[0-9a-fA-F]{3,6}\b", html)


def _big(n: int, variants: int = 6) -> Results:
    rng = np.random.default_rng(1)
    names = [f"variant_{i}" for i in range(variants)]
    scores = {v: list(rng.integers(0, 2, n).astype(float)) for v in names}
    return Results(_frame(scores), metrics={"exact_match": "binary"}, primary="exact_match",
                   baseline="variant_0")


def test_the_widget_pages_filters_and_toggles_the_diff():
    results = _big(120)
    panel = ui.ResultsPanel(results)
    grid = panel.grid
    labels = [label for label, _ in grid.filter.options]
    assert labels[0] == "All (120)" and labels[1].startswith("Regressed (")
    assert "examples 1–25 of 120 · page 1 of 5" in grid.position.value
    assert grid.body.value.count("<tr>") == 26  # header and one page
    assert grid.previous.disabled and not grid.next.disabled
    grid.next.click()
    assert "examples 26–50 of 120" in grid.position.value and "e25" in grid.body.value
    grid.filter.value = "regressed"
    regressed = grid_rows(grid.table, "regressed")
    assert f"of {len(regressed)} " in grid.position.value and "page 1 of" in grid.position.value
    first = grid.table.score.index[regressed[0]][0]
    assert f">{first}<" in grid.body.value
    grid.diff.value = True
    assert "<ins>" in grid.body.value or "<del>" in grid.body.value
    for v in range(6):
        assert f"variant_{v}" in grid.body.value
    grid.candidate.value = "variant_2"
    only = grid_rows(grid.table, "regressed", candidate="variant_2")
    assert dict(grid.filter.options)[f"Regressed ({len(only)})"] == "regressed"
    assert f"of {len(only)} " in grid.position.value
    with pytest.raises(ValueError, match="candidate must be a variant"):
        grid_rows(grid.table, candidate="nope")


def test_an_empty_filter_says_so():
    grid = GridView()
    frame = _frame({"a": [1, 1], "b": [1, 1]})
    grid.show(grid_table(frame, primary="exact_match", kinds={"exact_match": "binary"}))
    grid.filter.value = "errors"
    assert "No example in “errors”" in grid.body.value


def test_five_thousand_examples_render_one_page_only():
    panel = ui.ResultsPanel(_big(5000))
    assert "of 5000 · page 1 of 200" in panel.grid.position.value
    assert panel.grid.body.value.count("<tr>") == 26
    assert len(panel.grid.body.value) < 200_000


@pytest.mark.parametrize("tracking_uri, given, link", [
    ("http://mlflow.team:8080/", None, "http://mlflow.team:8080/#/runs/r1"),
    ("sqlite:///mlruns/mlflow.db", None, "http://127.0.0.1:5000/#/runs/r1"),
    ("http://mlflow.team:8080", "https://ui.example/", "https://ui.example/#/runs/r1"),
])
def test_mlflow_links_follow_the_tracking_server(tracking_uri, given, link):
    results = _big(3, variants=2)
    results.run_ids, results.tracking_uri = {"parent": "r1"}, tracking_uri
    panel = ui.ResultsPanel(results, mlflow_ui=given)
    assert f'href="{link}"' in panel.runs.value
    assert ("make ui" in panel.runs.value) == tracking_uri.startswith("sqlite")
