"""What ``run.trace_calls`` costs: one MLflow trace per call (with its scores and expected
values) against the default, every call a span in one trace per variant run.

Both write the same results table of N calls to a fresh SQLite store, after the calls, as
``log_execution`` does; the arms alternate for ``--rounds`` rounds and medians are printed.
No model is called: the cost measured is MLflow's store work alone.

    .venv/bin/python benchmarks/call_traces.py --calls 300 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _frame(calls: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    now = time.time()
    return pd.DataFrame({
        "variant": "guided", "prompt": "guided", "model": "openai/test-model",
        "example_id": [f"e{i:05d}" for i in range(calls)], "repeat": 0,
        "output": rng.choice(["positive", "negative"], calls), "error": None,
        "error_type": None, "prompt_tokens": 60, "completion_tokens": 2, "cost": 0.0,
        "latency_s": rng.uniform(0.05, 0.3, calls), "started_at": now + np.arange(calls) * 0.01,
        "cached": False, "answered_by": "openai/test-model", "retries": 0, "fallback": False,
        "warning": None, "score.exact_match": rng.integers(0, 2, calls).astype(float),
        "reason.exact_match": "compared with the label",
    })


def _evalset(calls: int):
    from workbench.evaluation.evalsets import Example

    return SimpleNamespace(examples=[
        Example(id=f"e{i:05d}", inputs={"ticket": f"ticket text number {i}",
                                        "label": "positive"}) for i in range(calls)])


def _arm(which: str, calls: int) -> float:
    import mlflow
    from mlflow import MlflowClient

    from workbench.run_call_traces import log_call_traces
    from workbench.run_traces import log_traces

    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        c = MlflowClient(uri)
        experiment_id = c.create_experiment("bench", artifact_location=f"file://{folder}/a")
        run_id = c.create_run(experiment_id).info.run_id
        frame, evalset = _frame(calls), _evalset(calls)
        start = time.perf_counter()
        if which == "spans":
            log_traces(uri, experiment_id, run_id, frame, "prompts:/p/1", evalset, None)
        else:
            log_call_traces(uri, experiment_id, run_id, frame, "prompts:/p/1", evalset, None,
                            ["label"])
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    arms = ["spans", "trace per call"]
    seen: dict[str, list[float]] = {arm: [] for arm in arms}
    for round_ in range(args.rounds):
        for arm in arms if round_ % 2 == 0 else arms[::-1]:
            seen[arm].append(_arm(arm, args.calls))
    print(f"{args.calls} calls, {args.rounds} rounds (median, all rounds)")
    for arm in arms:
        median = statistics.median(seen[arm])
        rounds = ", ".join(f"{s:.2f}" for s in seen[arm])
        print(f"  {arm:15s} {median:6.2f} s  {median / args.calls * 1000:6.2f} ms/call  "
              f"[{rounds}]")


if __name__ == "__main__":
    main()
