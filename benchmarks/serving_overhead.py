"""Serving overhead: what PromptService adds to a model call, and the HTTP app's throughput.

Both against the project's loopback OpenAI-compatible server (tests/llm_server.py) running
as its own process, so the numbers compare code paths, not the model. Ratios and
differences come from one run on one machine; absolute figures depend on its load.

    .venv/bin/python benchmarks/serving_overhead.py [--calls 1000] [--seconds 10]

1. Added latency: the same request as a direct ``litellm.acompletion`` and through
   ``PromptService.acomplete`` (registry look-up in memory, variable check, rendering,
   gateway, reply, request log), interleaved so drift hits both alike; p50 and p99 of each
   and the difference. Target: p50 added <= 1 ms.
2. Requests per second of ``workbench serve`` (FastAPI on uvicorn, one process) with an
   aiohttp load generator, all on loopback; beside it the model server alone (aiohttp
   straight to it) and litellm alone (one process calling it with the same concurrency),
   the two ceilings an app built on litellm can approach.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MESSAGES_TEMPLATE = "Classify this support ticket: {{ticket}}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_model_server() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([PYTHON, str(ROOT / "tests" / "llm_server.py"), "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    base_url = process.stdout.readline().strip()
    return process, base_url


def wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f}s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def register(base_url: str) -> None:
    from workbench import ModelConfig, PromptTemplate
    from workbench.prompts.registry import promote, register_version

    model = ModelConfig(model="openai/test-model", api_base=base_url, num_retries=0,
                        params={"temperature": 0, "max_tokens": 16})
    version, _ = register_version("bench", PromptTemplate(MESSAGES_TEMPLATE), model)
    promote("bench", version, "production", approver="benchmark")


async def added_latency(base_url: str, calls: int, log_requests: bool) -> dict[str, float]:
    import litellm

    from workbench import PromptService
    from workbench.gateway.client import Gateway

    logger = logging.getLogger("workbench.serving")
    logger.handlers.clear()
    logger.propagate = False
    if log_requests:
        logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    logger.setLevel(logging.INFO if log_requests else logging.WARNING)

    service = PromptService("bench", "production", refresh_s=60)
    ticket = "My invoice is wrong and I was charged twice"
    messages = [{"role": "user", "content": MESSAGES_TEMPLATE.replace("{{ticket}}", ticket)}]
    direct_kwargs = {"model": "openai/test-model", "messages": messages, "api_base": base_url,
                     "api_key": "none", "timeout": 120.0, "num_retries": 0,
                     "temperature": 0, "max_tokens": 16}

    async def direct() -> float:
        started = time.perf_counter()
        await litellm.acompletion(**direct_kwargs)
        return time.perf_counter() - started

    async def served() -> float:
        started = time.perf_counter()
        await service.acomplete(ticket=ticket, tags={"user": "bench"})
        return time.perf_counter() - started

    gateway, model = Gateway(), service.model

    async def gated() -> float:  # the gateway alone: what serving builds on
        started = time.perf_counter()
        await gateway.complete(model, messages)
        return time.perf_counter() - started

    paths = {"direct": direct, "gateway": gated, "served": served}
    for _ in range(50):  # warm every path: connection pools, imports, price look-ups
        for call in paths.values():
            await call()
    times: dict[str, list[float]] = {name: [] for name in paths}
    order = list(paths)
    for i in range(calls):
        for name in order[i % 3:] + order[:i % 3]:  # rotate so drift hits all alike
            times[name].append(await paths[name]())
    return {f"{name}_{stat}": value for name, t in times.items()
            for stat, value in (("p50", pct(t, .5)), ("p99", pct(t, .99)),
                                ("mean", statistics.fmean(t)))}


async def litellm_load(base_url: str, seconds: float, concurrency: int) -> dict[str, float]:
    """The same calls made by litellm in this process: what one Python process can drive."""
    import litellm

    kwargs = {"model": "openai/test-model", "api_base": base_url, "api_key": "none",
              "num_retries": 0, "messages": [{"role": "user", "content": "hi"}]}
    latencies: list[float] = []
    for _ in range(20):
        await litellm.acompletion(**kwargs)
    began = time.monotonic()
    stop = began + seconds

    async def worker() -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            await litellm.acompletion(**kwargs)
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - began
    return {"rps": len(latencies) / elapsed, "p50": pct(latencies, .5),
            "p99": pct(latencies, .99), "errors": 0, "n": len(latencies)}


async def load(url: str, body: dict, seconds: float, concurrency: int) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop = 0.0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < stop:
            started = time.perf_counter()
            async with session.post(url, json=body) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):  # warm-up
            async with session.post(url, json=body) as response:
                await response.read()
        began = time.monotonic()
        stop = began + seconds
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - began
    return {"rps": len(latencies) / elapsed, "p50": pct(latencies, .5),
            "p99": pct(latencies, .99), "errors": errors, "n": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per path (part 1)")
    parser.add_argument("--seconds", type=float, default=10.0, help="load duration (part 2)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="workbench-bench-")
    os.environ["WORKBENCH_HOME"] = home
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    model_server, base_url = start_model_server()
    serve = None
    try:
        register(base_url)
        print(f"machine: {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f} at start\n")
        print("1. added latency of PromptService.acomplete over litellm.acompletion "
              f"({args.calls} calls each, interleaved)")
        for log_requests in (False, True):
            r = asyncio.run(added_latency(base_url, args.calls, log_requests))
            label = "request log on (INFO)" if log_requests else "request log off"
            print(f"  {label}")
            for name, what in (("direct", "litellm.acompletion"), ("gateway", "Gateway.complete"),
                               ("served", "PromptService.acomplete")):
                print(f"    {what:<24} p50 {r[name + '_p50']*1e3:6.2f} ms  "
                      f"p99 {r[name + '_p99']*1e3:6.2f} ms  mean {r[name + '_mean']*1e3:6.2f} ms")
            for name, base, what in (("served", "direct", "PromptService over litellm"),
                                     ("served", "gateway", "PromptService over Gateway"),
                                     ("gateway", "direct", "Gateway over litellm")):
                print(f"    added, {what:<27} p50 "
                      f"{(r[name + '_p50'] - r[base + '_p50'])*1e3:+6.2f} ms  p99 "
                      f"{(r[name + '_p99'] - r[base + '_p99'])*1e3:+6.2f} ms")

        port = free_port()
        serve = subprocess.Popen(
            [str(Path(PYTHON).parent / "workbench"), "serve", "bench@production",
             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        logging.getLogger("workbench.serving").handlers.clear()
        print(f"\n2. requests/s on loopback, {args.seconds:.0f} s per row, aiohttp client")
        chat = {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}
        ticket = {"variables": {"ticket": "My invoice is wrong"}, "tags": {"user": "bench"}}
        for concurrency in args.concurrency:
            ceiling = asyncio.run(load(f"{base_url}/chat/completions", chat, args.seconds,
                                       concurrency))
            app = asyncio.run(load(f"http://127.0.0.1:{port}/v1/prompts/bench/complete",
                                   ticket, args.seconds, concurrency))
            driver = asyncio.run(litellm_load(base_url, args.seconds, concurrency))
            for name, r in (("model server alone", ceiling), ("litellm alone", driver),
                            ("workbench serve", app)):
                print(f"  c={concurrency:<3} {name:<19} {r['rps']:7.0f} req/s  "
                      f"p50 {r['p50']*1e3:6.1f} ms  p99 {r['p99']*1e3:6.1f} ms  "
                      f"errors {r['errors']}")
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=15)
        model_server.terminate()
        model_server.wait(timeout=15)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
