"""The Results grid, the dark theme and a missing key, in real JupyterLab in Chromium.

No model runs here: the grid and the A/B panel show results built in the notebook, and the
missing key stops the run before any call. Screenshots go to ``tests/browser/artifacts/``
(git-ignored), kept after the run for a reader of the test log or a CI upload.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"

RESULTS_CELL = '''
import numpy as np, pandas as pd
import workbench as wb
from workbench.results import Results

def synthetic(examples, variants, seed=0):
    rng = np.random.default_rng(seed)
    words = "the customer is satisfied dissatisfied refund order invoice late broken".split()
    names = [f"variant_{i}_with_a_long_name" for i in range(variants)]
    rows = []
    for e in range(examples):
        for v in names:
            text = " ".join(rng.choice(words, int(rng.integers(8, 40))))
            error = "RateLimitError: 429 Too Many Requests" if rng.random() < 0.01 else None
            rows.append({"variant": v, "prompt": v, "model": "m", "example_id": f"ex{e:05d}",
                         "repeat": 0, "output": None if error else text, "error": error,
                         "prompt_tokens": 50, "completion_tokens": 20, "cost": 0.0,
                         "latency_s": 0.5, "cached": False,
                         "score.exact_match": np.nan if error else float(rng.integers(0, 2)),
                         "reason.exact_match": ""})
    return Results.from_rows(rows, metrics={"exact_match": "binary"},
                             primary="exact_match", baseline=names[0])
'''

GRID_CELL = "panel = wb.ui.ResultsPanel(synthetic(5000, 6))\npanel"

AB_CELL = '''
n = 40
rows = []
for i in range(n):
    for v, score in (("bare", float(i % 4 == 0)), ("guided", 1.0)):
        rows.append({"variant": v, "prompt": v, "model": "m", "example_id": f"t{i}",
                     "repeat": 0, "output": "satisfied", "error": None, "prompt_tokens": 5,
                     "completion_tokens": 1, "cost": 0.0, "latency_s": 0.1, "cached": False,
                     "score.exact_match": score, "reason.exact_match": ""})
ab = wb.ui.ABPanel(Results.from_rows(rows, metrics={"exact_match": "binary"},
                                     primary="exact_match", baseline="bare").compare())
ab
'''

KEY_CELL = '''
import os
import workbench as wb
os.environ.pop("WB_BROWSER_MISSING_KEY", None)
bench = wb.ui.Workbench(wb.Experiment.from_yaml("../experiments/keyed"), limit=2)
bench.show("Run")
bench
'''

KEYED_YAML = """name: keyed
eval_set: {path: data/tickets.jsonl}
prompts: {bare: prompts/bare.yaml}
models:
  hosted: {model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:9/v1",
           api_key_env: WB_BROWSER_MISSING_KEY}
scorers: [{type: exact_match, expected: label}]
primary_metric: exact_match
"""


def _notebook(*cells: str) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                                  "outputs": [], "source": c.strip()} for c in cells],
                       "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}},
                       "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture(scope="module")
def notebooks(lab) -> dict[str, str]:
    """The test notebooks, written into the lab's root (and a keyed experiment beside the
    bundled one)."""
    folder = lab.root / "notebooks"
    bundled = lab.root / "experiments" / "support-triage"
    keyed = lab.root / "experiments" / "keyed"
    for part in ("data/tickets.jsonl", "prompts/bare.yaml"):
        (keyed / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bundled / part, keyed / part)
    (keyed / "experiment.yaml").write_text(KEYED_YAML)
    names = {"grid": _notebook(RESULTS_CELL, GRID_CELL),
             "ab": _notebook(RESULTS_CELL, AB_CELL), "key": _notebook(KEY_CELL)}
    for name, content in names.items():
        (folder / f"t_{name}.ipynb").write_text(content)
    ARTIFACTS.mkdir(exist_ok=True)
    return {name: f"notebooks/t_{name}.ipynb" for name in names}


def _open_and_run(page, lab, notebook: str):
    page.goto(lab.open_url(notebook))
    page.get_by_text(re.compile(r"ipykernel\) \| Idle")).wait_for()
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    return page.locator(".jp-NotebookPanel:visible .jp-OutputArea .jupyter-widgets").first


@pytest.fixture(autouse=True)
def shot_on_failure(page, request):
    """A screenshot of the whole page when the test fails, beside the others."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failed.png"))


def _shot(locator, name: str) -> None:
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    print(f"screenshot: {ARTIFACTS / name}.png")


def test_the_grid_with_six_variants_and_5000_examples(page, lab, notebooks):
    _open_and_run(page, lab, notebooks["grid"])
    panel = page.locator(".jp-NotebookPanel:visible .wb-panel").first
    grid = panel.locator(".wb-grid")
    grid.wait_for(timeout=120_000)
    heads = grid.locator("thead th")
    assert heads.count() == 7  # the example column and six variants
    boxes = [heads.nth(i).bounding_box() for i in range(7)]
    for left, right in zip(boxes, boxes[1:], strict=False):
        assert left["x"] + left["width"] <= right["x"] + 0.5  # side by side, no overlap
    overflowing = page.evaluate("""() => [...document.querySelectorAll('.wb-grid thead th')]
        .filter(th => th.scrollWidth > th.clientWidth + 1).length""")
    assert overflowing == 0  # long variant names wrap inside their header
    scroll = grid.evaluate("g => [g.scrollHeight, g.clientHeight, getComputedStyle(g).overflowY]")
    assert scroll[0] > scroll[1] and scroll[2] == "auto"  # the page scrolls inside the panel
    position = panel.locator(".wb-grid-view .widget-html", has_text="page 1 of 200")
    position.wait_for()
    _shot(panel.locator(".wb-grid-view"), "grid-6-variants")

    started = time.monotonic()
    panel.locator(".wb-grid-view button[title='next page']").click()
    panel.get_by_text("examples 26–50 of 5000").wait_for()
    turn = time.monotonic() - started
    print(f"page turn in the browser (5000 x 6): {turn * 1000:.0f} ms")
    assert turn < 5

    panel.locator(".wb-grid-view .widget-toggle-button", has_text="Regressed").click()
    panel.get_by_text(re.compile(r"examples 1–25 of \d+ · page 1 of")).wait_for()
    panel.get_by_text("diff vs baseline").click()
    grid.locator("ins, del").first.wait_for()
    _shot(panel.locator(".wb-grid-view"), "grid-regressed-diff")


def _contrast_script() -> str:
    """WCAG contrast of an element's text against what is painted behind it (translucent
    backgrounds composited up the tree)."""
    return """el => {
      const parse = c => {
        let m = c.match(/rgba?\\(([^)]+)\\)/);
        if (m) { const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
                 return [p[0] / 255, p[1] / 255, p[2] / 255, p.length > 3 ? p[3] : 1]; }
        m = c.match(/color\\(srgb ([^)]+)\\)/);
        if (m) { const p = m[1].split(/[ /]+/).filter(Boolean).map(Number);
                 return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
        throw new Error('colour ' + c);
      };
      const layers = [];
      for (let n = el; n; n = n.parentElement) {
        const bg = parse(getComputedStyle(n).backgroundColor);
        if (bg[3] > 0) layers.push(bg);
        if (bg[3] >= 1) break;
      }
      let under = [1, 1, 1];
      for (const [r, g, b, a] of layers.reverse()) {
        under = [r * a + under[0] * (1 - a), g * a + under[1] * (1 - a),
                 b * a + under[2] * (1 - a)];
      }
      const [fr, fg, fb, fa] = parse(getComputedStyle(el).color);
      const fore = [fr * fa + under[0] * (1 - fa), fg * fa + under[1] * (1 - fa),
                    fb * fa + under[2] * (1 - fa)];
      const lum = ([r, g, b]) => [r, g, b].map(v => v <= 0.03928 ? v / 12.92
          : Math.pow((v + 0.055) / 1.055, 2.4)).reduce((s, v, i) => s + v * [0.2126, 0.7152,
          0.0722][i], 0);
      const [hi, lo] = [lum(fore), lum(under)].sort((a, b) => b - a);
      return {ratio: (hi + 0.05) / (lo + 0.05), fore, under};
    }"""


def test_the_verdict_reads_in_the_dark_theme(page, lab, notebooks):
    page.goto(lab.open_url(notebooks["ab"]))
    page.get_by_text(re.compile(r"ipykernel\) \| Idle")).wait_for()
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: 'JupyterLab Dark'})")
    try:
        page.locator("body[data-jp-theme-light='false']").wait_for(state="attached")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        panel = page.locator(".jp-NotebookPanel:visible .wb-panel").first
        verdict = panel.locator(".wb-note", has_text="is the better variant").first
        verdict.wait_for(timeout=120_000)
        panel.locator(".wb-chart svg").first.wait_for()
        result = verdict.evaluate(_contrast_script())
        print(f"verdict contrast in the dark theme: {result}")
        assert result["under"][0] < 0.3  # really on a dark background
        assert result["ratio"] >= 4.5, result  # WCAG AA for body text
        _shot(panel, "ab-dark-theme")
    finally:
        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', "
                      "{theme: 'JupyterLab Light'})")
        page.locator("body[data-jp-theme-light='true']").wait_for(state="attached")


def test_a_missing_key_is_named_next_to_run_before_any_call(page, lab, notebooks):
    _open_and_run(page, lab, notebooks["key"])
    bench = page.locator(".jp-NotebookPanel:visible .wb-workbench").first
    bench.wait_for(timeout=120_000)
    run = bench.locator(".wb-panel").filter(
        has=page.get_by_role("heading", name="Run", exact=True))
    warning = run.locator(".wb-warn", has_text="WB_BROWSER_MISSING_KEY")
    warning.wait_for()
    button = run.locator("button.widget-button", has_text=re.compile(r"^\s*Run\s*$"))
    button.click()
    error = run.locator(".wb-error", has_text="Could not start the run")
    error.wait_for()
    assert "WB_BROWSER_MISSING_KEY" in error.inner_text()
    below = error.bounding_box()["y"] - (button.bounding_box()["y"]
                                         + button.bounding_box()["height"])
    assert 0 <= below < 40  # the message sits right under the button that caused it
    assert "calls ·" not in run.inner_text()  # no progress: the run never started
    assert not button.is_disabled()
    _shot(run, "run-missing-key")
