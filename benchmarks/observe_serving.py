"""The usage ledger's cost on a served request, end to end: ledger on against off.

    .venv/bin/python benchmarks/observe_serving.py [--calls 1000]

``PromptService.acomplete`` against the loopback model server (tests/llm_server.py in its
own process), the same request with ``WORKBENCH_LEDGER`` on and off, interleaved so drift
hits both alike; p50 and p99 of each and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_overhead import pct, register, start_model_server  # noqa: E402


async def measure(calls: int) -> dict[str, list[float]]:
    from workbench import PromptService
    from workbench.observe import default_ledger

    service = PromptService("bench", "production", refresh_s=60,
                            tags={"application": "bench"})
    timings: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(50):  # warm-up: connections, litellm, the ledger's store
        await service.acomplete(ticket="My invoice is wrong", tags={"user": "u-1"})
    for i in range(2 * calls):
        state = ("on", "off")[i % 2]
        os.environ["WORKBENCH_LEDGER"] = state
        started = time.perf_counter()
        await service.acomplete(ticket="My invoice is wrong", tags={"user": "u-1"})
        timings[state].append(time.perf_counter() - started)
    os.environ["WORKBENCH_LEDGER"] = "on"
    health = default_ledger().health()
    default_ledger().flush()
    print(f"ledger: {default_ledger().health()} (at the end of the loop: {health.waiting} "
          "waiting)")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="workbench-bench-")
    os.environ["WORKBENCH_HOME"] = home
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    model_server, base_url = start_model_server()
    try:
        register(base_url)
        timings = asyncio.run(measure(args.calls))
        for state in ("off", "on"):
            values = timings[state]
            print(f"ledger {state:<3} p50 {pct(values, 0.5) * 1e3:6.3f} ms  "
                  f"p99 {pct(values, 0.99) * 1e3:6.3f} ms")
        added = pct(timings['on'], 0.5) - pct(timings['off'], 0.5)
        print(f"added p50 {added * 1e3:+.3f} ms")
    finally:
        model_server.terminate()
        model_server.wait(timeout=15)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
