"""The Promote and Annotate tabs in real JupyterLab in Chromium, on the loopback model server:
a promotion to a protected alias becomes a request that someone else approves from the
panel; a label typed with the keyboard shortcuts is still there after the kernel restarts.
Screenshots go to the test's temp folder (the path is printed)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import TICKETS

TIMEOUT = 90_000  # ms; a run of 16 calls on a shared CPU, MLflow logging included


def _case(lab, llm_server, template_db: Path, name: str, *, protected: bool) -> str:
    """A project folder of its own in the lab's root: experiment, store, policy, notebook."""
    root = lab.root / name
    folder = root / "experiment"
    (folder / "data").mkdir(parents=True)
    (folder / "prompts").mkdir()
    (folder / "data" / "tickets.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in TICKETS))
    (folder / "prompts" / "bare.yaml").write_text(
        yaml.safe_dump({"template": "Sentiment of: {{ticket}}"}))
    (folder / "prompts" / "guided.yaml").write_text(yaml.safe_dump({"messages": [
        {"role": "system", "content": "Answer with one word: positive or negative."},
        {"role": "user", "content": "{{ticket}}"}]}))
    (folder / "experiment.yaml").write_text(yaml.safe_dump({
        "name": name, "eval_set": {"path": "data/tickets.jsonl"},
        "prompts": {"bare": "prompts/bare.yaml", "guided": "prompts/guided.yaml"},
        "models": {"fake": {"model": "openai/test-model", "api_base": llm_server.base_url,
                            "num_retries": 0,
                            "params": {"temperature": 0, "max_tokens": 8}}},
        "scorers": [{"type": "exact_match", "expected": "label"},
                    {"type": "contains", "expected": "label", "whole_word": True}],
        "primary_metric": "exact_match", "baseline": "bare"}, sort_keys=False))
    (root / "mlruns").mkdir()
    shutil.copy(template_db, root / "mlruns" / "mlflow.db")
    if protected:
        (root / "workbench.yaml").write_text("registry:\n  protected: [production]\n")
    cells = [
        # this folder is the project: its own store, cache and registry policy
        "import os\nos.environ['WORKBENCH_HOME'] = os.getcwd()\nimport workbench as wb\n"
        "exp = wb.Experiment.from_yaml('experiment')",
        "bench = wb.ui.Workbench(exp, limit=8, approver='alice', annotator='ann')\nbench",
        "bench.run.start()\nresults = bench.run.wait()",
    ]
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}",
                           "metadata": {}, "outputs": [], "source": source}
                          for i, source in enumerate(cells)],
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                            "name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5}
    (root / "panels.ipynb").write_text(json.dumps(notebook))
    return f"{name}/panels.ipynb"


class Bench:
    """The workbench widget of the open notebook, by tab."""

    def __init__(self, page, lab, notebook: str, shots: Path) -> None:
        self.page, self.shots = page, shots
        page.goto(lab.open_url(notebook))
        page.get_by_text(re.compile(r"ipykernel\) \| Idle")).wait_for()
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        self.root = page.locator(".jp-NotebookPanel:visible .wb-workbench").first
        self.root.wait_for()
        self.panel("Results").locator(".wb-summary table").wait_for(timeout=TIMEOUT)

    def panel(self, title: str):
        heading = self.page.get_by_role("heading", name=title, exact=True)
        return self.root.locator(".wb-panel").filter(has=heading)

    def tab(self, title: str):
        self.root.locator(".lm-TabBar-tab", has_text=title).first.click()
        shown = self.panel(title)
        shown.wait_for()
        return shown

    def snap(self, step: str) -> Path:
        path = self.shots / f"{step}.png"
        self.root.screenshot(path=str(path))
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    # kept as test artifacts beside the other browser tests' (tests/browser/artifacts)
    folder = Path(__file__).parent / "artifacts" / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def _button(panel, text: str):
    return panel.locator("button.widget-button:visible", has_text=re.compile(rf"^\s*{text}\s*$"))


def test_a_protected_promotion_is_approved_from_the_panel(page, lab, llm_server,
                                                          _mlflow_template, shots):
    notebook = _case(lab, llm_server, _mlflow_template, "protected", protected=True)
    try:
        bench = Bench(page, lab, notebook, shots)
        promote = bench.tab("Promote")
        aliases = promote.locator(".wb-table").first
        assert "@production (protected)" in aliases.inner_text()
        assert "Answer with one word" in promote.locator(".wb-version-text").inner_text()

        # 8 examples do not make a verdict: promoting anyway takes a written reason
        promote.get_by_label("Reason", exact=True).fill("one-word answers; smoke run")
        _button(promote, "Promote").click()
        promote.get_by_text("Request recorded, approval needed").wait_for()
        assert "not set" in aliases.inner_text()  # the alias has not moved
        promote.get_by_text("requested by").wait_for()
        bench.snap("1-request-recorded")

        _button(promote, "Approve").click()  # alice approving her own request
        _button(promote, "Confirm").click()
        promote.get_by_text("a different person must approve it").wait_for()

        promote.get_by_label("Approver").fill("bob")
        promote.get_by_label("Approver").press("Tab")
        _button(promote, "Approve").click()
        promote.get_by_text(re.compile(r"Approve and move @production")).wait_for()
        _button(promote, "Confirm").click()
        promote.get_by_text(re.compile(r"Approved: @production now points at v\d")).wait_for()
        promote.get_by_text("No request is waiting").wait_for()
        assert "bob (promotion)" in aliases.inner_text()
        bench.snap("2-approved")
    except Exception:
        page.screenshot(path=str(shots / "failed.png"))
        raise
    whole = page.locator(".jp-NotebookPanel:visible").inner_text()
    assert "Traceback" not in whole


def test_a_label_typed_with_shortcuts_is_still_there_after_a_restart(page, lab, llm_server,
                                                                     _mlflow_template, shots):
    notebook = _case(lab, llm_server, _mlflow_template, "annotate", protected=False)
    try:
        bench = Bench(page, lab, notebook, shots)
        annotate = bench.tab("Annotate")
        annotate.get_by_text("0 of 8 labelled").wait_for()
        first = annotate.locator(".widget-dropdown", has_text="Example").locator("select")
        first_id = first.input_value()
        keys = annotate.get_by_placeholder(re.compile("click here, then type"))
        keys.click()
        page.keyboard.type("b")
        annotate.locator(".widget-toggle-button.mod-active", has_text="Bad").wait_for()
        page.keyboard.type("2")
        score = annotate.locator(".widget-dropdown", has_text="Score").locator("select")
        page.wait_for_function("s => s.selectedOptions[0]?.text === '2'",
                               arg=score.element_handle())
        page.keyboard.type("s")
        annotate.get_by_text(f"Saved feedback on {first_id}").wait_for()
        annotate.get_by_text("1 of 8 labelled").wait_for()
        bench.snap("1-labelled")

        for session in lab.api("GET", "/api/sessions"):  # the kernel goes away
            lab.api("DELETE", f"/api/sessions/{session['id']}")
        bench = Bench(page, lab, notebook, shots)
        annotate = bench.tab("Annotate")
        annotate.get_by_text("1 of 8 labelled").wait_for()
        example = annotate.locator(".widget-dropdown", has_text="Example").locator("select")
        example.select_option(label=f"{first_id}  ✓")
        annotate.get_by_text(re.compile(r"ann: bad, score 2")).wait_for()
        assert "mod-active" in annotate.locator(".widget-toggle-button",
                                                has_text="Bad").get_attribute("class")
        bench.snap("2-after-restart")
    except Exception:
        page.screenshot(path=str(shots / "failed.png"))
        raise
