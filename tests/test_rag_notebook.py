"""notebooks/04_rag.ipynb runs top to bottom on the embedded model, with no key."""

from __future__ import annotations

import pytest

from .test_notebooks import errors, execute, outputs_text, widget_text


@pytest.mark.embedded_model
def test_rag_notebook_builds_runs_recommends_and_shows_the_panel(project):
    notebook = execute("04_rag.ipynb")
    assert errors(notebook) == []
    text = outputs_text(notebook)
    assert "Index('kb-bm25@v1'" in text and "Index('kb-lsa@v1'" in text
    assert "[1] (" in text  # the retrieved passages in the preview
    assert "recall_at_k_ci_low" in text and "context tokens per example" in text
    shown = widget_text(notebook)
    assert "Recall by cutoff" in shown and "Missed relevant documents" in shown
    assert "Traceback" not in shown
