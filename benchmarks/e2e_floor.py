"""What the required parts cost on their own, on the end-to-end benchmark's work.

    .venv/bin/python benchmarks/e2e_floor.py            # prints a table
    .venv/bin/python benchmarks/e2e_floor.py --write    # also update RESULTS.md

``benchmarks/e2e_promptfoo.py`` times a whole ``workbench run`` of 2,000 calls against
promptfoo. This one times the parts of that run the workbench cannot leave out, each in a
fresh process, so the end-to-end figure can be read against them:

- importing litellm, and importing MLflow;
- creating a new MLflow SQLite store (its migrations), as a first run does;
- the 2,000 calls through ``Gateway`` (litellm) at concurrency 50 against the loopback
  server answering after 100 ms, in one process, and split between two processes made by
  ``fork`` after litellm's import (25 calls in flight each), the most a run could gain from
  a second core with the same concurrency.

No cache, no scoring, no logging: only litellm's and MLflow's own work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_promptfoo import replace_section  # noqa: E402
from loopback import LoopbackServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## End to end: what litellm and MLflow cost on their own"

IMPORT = """
import time, json
t, c = time.perf_counter(), time.process_time()
import {module}
print(json.dumps({{"wall": time.perf_counter() - t, "cpu": time.process_time() - c}}))
"""

STORE = """
import json, sys, time
import mlflow
from workbench.store import check_store
t, c = time.perf_counter(), time.process_time()
check_store("sqlite:///" + sys.argv[1])
print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""

CALLS = """
import asyncio, json, os, sys, time
from workbench.gateway.client import Gateway
from workbench.gateway.config import ModelConfig
import litellm  # noqa: F401  (imported before the fork: the child inherits it)

url = sys.argv[1]
processes, calls, concurrency = (int(a) for a in sys.argv[2:5])
config = ModelConfig(model="openai/test-model", api_base=url, num_retries=0,
                     params={"temperature": 0, "max_tokens": 8})


async def share(first, count, slots):
    gateway, gate = Gateway(), asyncio.Semaphore(slots)

    async def one(i):
        async with gate:
            return await gateway.complete(config, [
                {"role": "user", "content": f"Sentiment of: ticket {i}"}])

    await asyncio.gather(*(one(first + i) for i in range(count)))


def warm():  # litellm's first call builds its client: not part of the per-call cost
    asyncio.run(share(-1, 1, 1))


warm()
started, cpu = time.perf_counter(), time.process_time()
children, index = [], 0
for index in range(1, processes):
    pid = os.fork()
    if pid == 0:
        break
    children.append(pid)
else:
    index = 0
each = calls // processes
asyncio.run(share(index * each, each, concurrency // processes))
if index:
    os._exit(0)
for pid in children:
    os.waitpid(pid, 0)
total = time.process_time() - cpu + sum(  # the children's CPU, once they were waited for
    getattr(os.times(), name) for name in ("children_user", "children_system"))
print(json.dumps({"wall": time.perf_counter() - started, "cpu": total}))
"""


def run(code: str, *args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOPBACK_API_KEY": "sk-loopback",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(rounds: int, calls: int, concurrency: int, latency: float) -> dict[str, Any]:
    found: dict[str, list[dict[str, float]]] = {}
    with LoopbackServer(latency=latency) as server, tempfile.TemporaryDirectory() as work:
        for round_ in range(rounds):
            steps = {
                "import litellm": lambda: run(IMPORT.format(module="litellm")),
                "import mlflow": lambda: run(IMPORT.format(module="mlflow")),
                "new MLflow store": lambda r=round_: run(STORE, f"{work}/store-{r}/mlflow.db"),
                f"{calls:,} calls, 1 process": lambda: run(
                    CALLS, server.base_url, "1", str(calls), str(concurrency)),
                f"{calls:,} calls, 2 processes": lambda: run(
                    CALLS, server.base_url, "2", str(calls), str(concurrency)),
            }
            for name, step in steps.items():
                server.reset()
                one = step()
                found.setdefault(name, []).append(one)
                print(f"round {round_ + 1}: {name:<24} wall {one['wall']:6.2f} s  "
                      f"CPU {one['cpu']:6.2f} s", flush=True)
    return {"steps": found, "calls": calls, "load": os.getloadavg()}


def summary(data: dict[str, Any]) -> list[str]:
    lines = ["| step | wall s (median) | CPU s (median) | rounds (wall) |", "|---|---|---|---|"]
    for name, runs in data["steps"].items():
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        lines.append(f"| {name} | {wall:.2f} | {cpu:.2f} | "
                     + ", ".join(f"{r['wall']:.2f}" for r in runs) + " |")
    one = statistics.median(r["cpu"] for r in data["steps"][f"{data['calls']:,} calls, 1 process"])
    lines += ["", f"litellm's CPU per call, one process: {one / data['calls'] * 1000:.2f} ms."]
    return lines


def write_results(lines: list[str], args: argparse.Namespace, data: dict[str, Any]) -> None:
    intro = (f"`.venv/bin/python benchmarks/e2e_floor.py --rounds {args.rounds}` (last run "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
             f"{data['load'][0]:.1f} at the end). Each step in a fresh process; the calls "
             f"go to the loopback server answering after {args.latency * 1000:.0f} ms at "
             f"concurrency {args.concurrency}, with no cache, scoring or logging.")
    replace_section(SECTION, intro, lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.1, help="server delay, seconds")
    parser.add_argument("--write", action="store_true", help="update RESULTS.md")
    args = parser.parse_args()
    data = measure(args.rounds, args.calls, args.concurrency, args.latency)
    lines = summary(data)
    print("\n".join(lines))
    if args.write:
        write_results(lines, args, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
