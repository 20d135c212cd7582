"""The workbench notebook in real JupyterLab in Chromium: run it, edit a prompt, save it as
a variant, run again, read the per-example viewer, promote. A screenshot per step goes to
the test's temp folder (the path is printed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOK = "notebooks/02_workbench_ui.ipynb"
RUN_TIMEOUT = 240_000  # ms; the embedded model on a busy shared CPU


@pytest.mark.embedded_model
def test_edit_run_view_and_promote_in_jupyterlab(page, lab):
    shots = Path(__file__).parent / "artifacts" / "edit-run-view-promote"  # kept as artifacts
    shots.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {shots}")

    try:
        _walk_through(page, lab, shots)
    except Exception:
        page.screenshot(path=str(shots / "failed.png"))
        raise


def _walk_through(page, lab, shots: Path) -> None:
    page.goto(lab.open_url(NOTEBOOK))
    page.get_by_text(re.compile(r"ipykernel\) \| Idle")).wait_for()
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    bench = page.locator(".jp-NotebookPanel:visible .wb-workbench").first
    bench.wait_for()

    def panel(title: str):
        heading = page.get_by_role("heading", name=title, exact=True)
        return bench.locator(".wb-panel").filter(has=heading)

    def tab(title: str, heading: str | None = None):
        bench.locator(".lm-TabBar-tab", has_text=title).first.click()
        shown = panel(heading or title)
        shown.wait_for()
        return shown

    def snap(step: str) -> None:
        bench.screenshot(path=str(shots / f"{step}.png"))

    results = panel("Results")
    # the notebook's own `bench.run.start(); bench.run.wait()` cell, then the Results tab
    summary = results.locator(".wb-summary table")
    summary.wait_for(timeout=RUN_TIMEOUT)
    assert "guided" in summary.inner_text()
    snap("1-after-run-all")

    # ---- edit a prompt: the preview follows, then save it as a new variant ---------------
    prompts = tab("Prompts")
    editor = prompts.locator(".widget-textarea textarea").first
    editor.fill("Satisfied or dissatisfied? Answer in one word.\n\n{{ticket}}")
    prompts.get_by_text("edited, not saved").wait_for()
    assert "Answer in one word." in prompts.locator(".wb-scroll").first.inner_text()
    prompts.get_by_placeholder("e.g. guided_v2").fill("oneword")
    prompts.get_by_role("button", name="Save as new variant").click()
    prompts.get_by_text("Saved prompts/oneword.yaml").wait_for()
    assert (lab.root / "experiments/support-triage/prompts/oneword.yaml").is_file()
    snap("2-prompt-saved-as-variant")

    # ---- run the three variants; the two earlier ones come from the cache ------------------
    run = tab("Run")
    assert "3 variants" in run.inner_text()
    run.locator("button.widget-button", has_text=re.compile(r"^\s*Run\s*$")).click()
    # when the run ends the workbench switches to the Results tab by itself
    results.locator(".wb-summary table", has_text="oneword").wait_for(timeout=RUN_TIMEOUT)
    run = tab("Run")
    assert "Finished 12 calls" in run.inner_text()
    assert re.search(r"8\s+cache hits", run.inner_text())
    snap("3-run-finished")

    # ---- results: summary for all three, then the per-example viewer ---------------------
    results = tab("Results")
    results.get_by_text("Per-example outputs, variants side by side").click()
    viewer = results.locator(".widget-accordion th", has_text="(baseline)")
    viewer.wait_for()
    view_text = results.locator(".widget-accordion").inner_text()
    assert "oneword" in view_text and "exact_match" in view_text and "ticket" in view_text
    results.locator(".widget-toggle-button", has_text="Disagreements").click()
    snap("4-per-example-viewer")

    ab = tab("A/B", heading="A/B comparison")
    assert "No variant is shown to be better" in ab.inner_text()
    ab.locator(".wb-chart svg").first.wait_for()  # the forest plot, in theme colours
    snap("5-ab-report")
    snap_tab = tab("Annotate")
    assert snap_tab.inner_text().strip()
    snap("6-annotate")

    # ---- promote against the (absent) verdict: a reason is required and kept --------------
    promote = tab("Promote")
    assert "Verdict" in promote.inner_text()
    promote_button = promote.locator("button.widget-button", has_text="Promote")
    promote_button.click()
    promote.locator(".wb-error").wait_for()
    promote.get_by_label("Reason").fill("trial on staging with 4 examples")
    promote.get_by_label("Alias").fill("staging")
    promote_button.click()
    promote.get_by_text(re.compile(r"Promoted .* to @staging")).wait_for()
    assert "Reason kept" in promote.inner_text()
    snap("7-promoted")

    whole = page.locator(".jp-NotebookPanel:visible").inner_text()
    assert "Traceback" not in whole and "Error:" not in whole
