"""Install what you use: the serve path needs no extra, and a missing extra says what to install."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from workbench._optional import MissingDependency, optional_import
from workbench.errors import GatewayError, WorkbenchError

ROOT = Path(__file__).resolve().parents[1]
SERVE_PATH = ("workbench.serving", "workbench.serving.http_app", "workbench.cli.serve")
EXTRAS_ONLY = ("jupyterlab", "ipywidgets", "xllamacpp", "matplotlib")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    out = set()
    for req in requirements:
        name = req.split(";")[0].split("[")[0]
        for sep in "=<>!~ ":
            name = name.split(sep)[0]
        out.add(name.strip().lower())
    return out


def test_core_dependencies_leave_the_notebook_and_the_embedded_model_to_extras():
    project = _project()
    core = _names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert not core & {"jupyterlab", "ipywidgets", "xllamacpp", "matplotlib"}
    assert {"mlflow", "litellm", "fastapi", "uvicorn", "prometheus-client", "pydantic",
            "pyyaml", "sqlalchemy"} <= core
    assert "xllamacpp" in _names(extras["local"])
    assert {"jupyterlab", "ipywidgets", "matplotlib"} <= _names(extras["lab"])
    assert set(extras["all"]) == {"prompt-workbench[local,lab,rag,team]"}
    assert "prompt-workbench[all]" in extras["dev"]
    # The Makefile installs dev, hence every extra.
    assert "-e '.[dev]'" in (ROOT / "Makefile").read_text()


def test_the_serve_path_imports_no_extra_at_module_level():
    code = ("import sys\n"
            + "".join(f"import {m}\n" for m in SERVE_PATH)
            + f"print(','.join(m for m in {EXTRAS_ONLY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.strip()
    assert loaded == ""


@pytest.fixture
def missing(monkeypatch):
    """Make importing the named top-level modules fail, as when they are not installed."""
    real = importlib.import_module

    def install(*names):
        def fake(name, package=None):
            if name.split(".")[0] in names:
                raise ModuleNotFoundError(f"No module named {name!r}")
            return real(name, package)
        monkeypatch.setattr(importlib, "import_module", fake)
    return install


def test_a_missing_extra_names_the_install_command(missing):
    missing("xllamacpp")
    with pytest.raises(MissingDependency) as info:
        optional_import("xllamacpp", "local", "the embedded model")
    assert isinstance(info.value, WorkbenchError)
    assert "pip install 'prompt-workbench[local]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)


def test_the_embedded_model_without_its_runtime_is_a_gateway_error_with_the_hint(missing):
    from workbench.gateway import local_model

    missing("xllamacpp")
    with pytest.raises(GatewayError, match=r"prompt-workbench\[local\]"):
        local_model.server("no-such-model-name")


def test_charts_without_matplotlib_name_the_lab_extra(missing):
    from workbench.evaluation.stats._plot import forest_plot

    missing("matplotlib")
    with pytest.raises(MissingDependency, match=r"prompt-workbench\[lab\]"):
        forest_plot(object())


def test_the_panels_without_ipywidgets_name_the_lab_extra(missing, monkeypatch):
    for name in [m for m in sys.modules if m == "workbench.ui" or m.startswith("workbench.ui.")]:
        monkeypatch.delitem(sys.modules, name)
    missing("ipywidgets")
    with pytest.raises(MissingDependency, match=r"prompt-workbench\[lab\]"):
        importlib.import_module("workbench.ui")
