"""The package surface: small, typed, and quick to import in a notebook."""

import subprocess
import sys

import workbench

HEAVY = ("mlflow", "litellm", "datasets", "evaluate", "xllamacpp", "pandas", "scipy",
         "matplotlib", "pydantic")


def test_importing_workbench_loads_no_heavy_library():
    code = ("import sys, workbench; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == ""


def test_the_public_names():
    assert workbench.__all__ == sorted(workbench.__all__)
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None


def test_offline_defaults_are_set_but_never_override_the_user(monkeypatch):
    from workbench.environment import apply_offline_defaults

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY")
    apply_offline_defaults()
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
