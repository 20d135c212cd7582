"""Shared fixtures: a loopback model server, a throw-away MLflow store, experiment folders."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import workbench  # noqa: E402,F401  (sets the offline defaults before mlflow/litellm import)

from .llm_server import FakeLLMServer  # noqa: E402

LABELS = {"refund": "negative", "love": "positive", "broken": "negative", "great": "positive"}


def sentiment(body: dict[str, Any]) -> str:
    """A deterministic 'model': the guided prompt (it says 'one word') is right more often."""
    text = body["messages"][-1]["content"].lower()
    guided = "one word" in json.dumps(body["messages"]).lower()
    for cue, label in LABELS.items():
        if cue in text:
            if guided or cue in ("love", "refund"):
                return label
            return f"I think the customer feels {'good' if label == 'negative' else 'bad'}."
    return "neutral"


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=sentiment) as server:
        yield server


@pytest.fixture(autouse=True)
def _rate_windows_of_this_test_only() -> Iterator[None]:
    """A model's rpm/tpm windows live as long as the process: a test must not inherit
    another's (two servers may get the same port, hence the same model config)."""
    yield
    from workbench.gateway import client

    client._WINDOWS.clear()


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow database, made once: creating one costs several seconds."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow-template")
    db = folder / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _mlflow_template: Path) -> Path:
    """A project folder of its own: mlruns/ with a fresh MLflow store, and the cache."""
    (tmp_path / "mlruns").mkdir()
    shutil.copy(_mlflow_template, tmp_path / "mlruns" / "mlflow.db")
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


TICKETS = [
    {"id": f"t{i:03d}", "ticket": f"{text} (order {i})", "label": label}
    for i, (text, label) in enumerate(
        [("I love this app", "positive"), ("I want a refund now", "negative"),
         ("The screen arrived broken", "negative"), ("Great support, thanks", "positive")] * 5
    )
]


def write_experiment(project: Path, base_url: str, name: str = "triage",
                     rows: list[dict[str, Any]] | None = None,
                     prompts: dict[str, Any] | None = None, **overrides: Any) -> Path:
    """An experiment folder: two prompt variants of the tickets, one model at ``base_url``."""
    folder = project / "experiments" / name
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "prompts").mkdir(exist_ok=True)
    with open(folder / "data" / "tickets.jsonl", "w") as f:
        for row in rows if rows is not None else TICKETS:
            f.write(json.dumps(row) + "\n")
    prompts = prompts or {
        "bare": {"template": "Sentiment of: {{ticket}}"},
        "guided": {"messages": [
            {"role": "system", "content": "Answer with one word: positive or negative."},
            {"role": "user", "content": "{{ticket}}"}]},
    }
    for prompt, content in prompts.items():
        (folder / "prompts" / f"{prompt}.yaml").write_text(yaml.safe_dump(content))
    spec = {
        "name": name,
        "eval_set": {"path": "data/tickets.jsonl"},
        "prompts": {p: f"prompts/{p}.yaml" for p in prompts},
        "models": {"fake": {"model": "openai/test-model", "api_base": base_url,
                            "params": {"temperature": 0, "max_tokens": 8},
                            "num_retries": 0}},
        "scorers": [{"type": "exact_match", "expected": "label"},
                    {"type": "contains", "expected": "label", "whole_word": True}],
        "primary_metric": "exact_match",
        "baseline": "bare",
        "run": {"concurrency": 4},
    }
    spec.update(overrides)
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


@pytest.fixture
def make_experiment(project: Path, llm_server: FakeLLMServer) -> Callable[..., Path]:
    """Write an experiment folder; keyword arguments override experiment.yaml fields."""

    def make(name: str = "triage", rows: list[dict[str, Any]] | None = None,
             prompts: dict[str, Any] | None = None, **overrides: Any) -> Path:
        return write_experiment(project, llm_server.base_url, name, rows, prompts,
                                **overrides)

    return make


@pytest.fixture
def offline_experiment(project: Path) -> Callable[..., Path]:
    """As ``make_experiment``, with no model server: for runs given ``send=FakeSend(...)``."""

    def make(name: str = "triage", rows: list[dict[str, Any]] | None = None,
             prompts: dict[str, Any] | None = None, **overrides: Any) -> Path:
        return write_experiment(project, "http://127.0.0.1:9/v1", name, rows, prompts,
                                **overrides)

    return make
