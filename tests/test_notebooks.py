"""The tutorial notebooks run top to bottom on the embedded model, with no key."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def widget_text(notebook: nbformat.NotebookNode) -> str:
    """Every string in the saved widget state: what the panels showed when the cells ran."""
    state = notebook.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return "\n".join(str(value) for model in state.values()
                     for value in model.get("state", {}).values() if isinstance(value, str))


def errors(notebook: nbformat.NotebookNode) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for cell in notebook.cells
            for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(parts)


@pytest.mark.embedded_model
def test_quickstart_runs_compares_promotes_and_serves(project):
    notebook = execute("01_quickstart.ipynb")
    text = outputs_text(notebook)
    assert "Verdict" in text or "verdict" in text
    assert "promoted" in text and "prompts:/support-triage/" in text
    assert "v" in text and "tokens" in text
    # the notebook wrote to this test's own store, not the repository's
    assert (project / "mlruns" / "mlflow.db").stat().st_size > 0


@pytest.fixture(scope="module")
def _model_answers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("response-cache")


@pytest.fixture
def shared_cache(project: Path, _model_answers: Path) -> Path:
    """One response cache for the UI notebooks: they ask the embedded model the same
    questions, and a cached answer is what a resumed run uses anyway."""
    (project / ".workbench").symlink_to(_model_answers, target_is_directory=True)
    return project


@pytest.mark.embedded_model
def test_workbench_ui_notebook_shows_the_panels_and_a_finished_run(shared_cache):
    notebook = execute("02_workbench_ui.ipynb")
    assert errors(notebook) == []
    shown = widget_text(notebook)
    for tab in ("Prompts", "Models", "Run", "Results", "A/B", "Annotate", "Promote"):
        assert tab in shown
    assert "Sentiment" not in shown  # the bundled prompts, not the test fixture's
    assert "Is this customer satisfied or dissatisfied?" in shown  # the prompt preview
    assert "Finished 8 calls" in shown  # the Run tab after bench.run.wait()
    assert "MLflow runs:" in shown and "exact_match" in shown
    assert "Traceback" not in shown
    text = outputs_text(notebook)
    assert "exact_match_ci_low" in text  # results.summary() printed below the panels


@pytest.mark.embedded_model
def test_promote_and_serve_notebook_keeps_the_rule_and_serves_the_alias(shared_cache):
    notebook = execute("03_promote_and_serve.ipynb")
    assert errors(notebook) == []
    text = outputs_text(notebook)
    assert "refused:" in text and "reason=" in text
    assert "promoted" in text and "prompts:/support-triage/" in text
    assert "MLflow sees version" in text
    shown = widget_text(notebook)
    assert "Promote" in shown and "Verdict" in shown
    assert "Traceback" not in shown
