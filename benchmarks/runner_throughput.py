"""Gateway and runner throughput: the workbench against plain litellm, MLflow and llama.cpp.

Every figure is a ratio measured side by side in one run of this script; arms are
interleaved ``--rounds`` times, in reverse order every other round (A B C, C B A, ...) so
that a drift over the run weighs on every arm alike, and medians are reported, because
absolute numbers on a shared 2-core machine drift. Everything talks to 127.0.0.1 only: the model
server is the project's loopback server (tests/llm_server.py) in its own process.

    .venv/bin/python benchmarks/runner_throughput.py            # all items, prints tables
    .venv/bin/python benchmarks/runner_throughput.py --only 1,2  # a subset
    .venv/bin/python benchmarks/runner_throughput.py --write     # also update RESULTS.md

Items (numbers as in ``--only``):

1. 2,000 calls (4 prompt variants x 500 examples), concurrency 50, 100 ms server latency:
   plain ``litellm.acompletion`` under a semaphore (own process) vs ``Experiment.run``
   (scoring and MLflow logging included), with ``run.trace`` off and on.
2. The same run again, fully cached: wall time and requests at the server.
3. Per-call CPU at zero latency: ``litellm.acompletion`` vs litellm's ``Router`` (as the
   gateway configures it) vs ``Gateway.complete`` (first and later run in a process); then
   a cProfile of each, to show where the difference goes.
4. 500 examples through ``mlflow.genai.evaluate`` (predict_fn + ``@scorer``) vs the
   workbench, both against the same server.
5. The embedded model through the gateway vs ``local_model.chat``: generated tokens/s.
6. Both cores: two plain-litellm processes, and the workbench with ``workers=2``, vs one
   plain-litellm process on the same 2,000 calls.

MLflow store and response cache live in a temporary WORKBENCH_HOME, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import gc
import json
import os
import platform
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback import LoopbackServer, cpu_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Gateway and runner"

LATENCY = 0.1
CONCURRENCY = 50
MODEL_PARAMS = {"temperature": 0, "max_tokens": 8}
TABLE_MODEL = "openai/gpt-4o-mini"  # in litellm's price table
TABLE_PLAIN = "litellm.acompletion, model in litellm's table"
TABLE_GATEWAY = "Gateway.complete, model in litellm's table"
DOUBLED = "plain litellm, 2 processes, 2x calls in flight (not a target arm)"
UNTOUCHED = "workbench, trace off, collector as Python's"
TARGETS = {
    "single": 0.90,      # workbench calls/s >= 90% of plain litellm
    "cached_s": 2.0,     # fully cached run <= 2 s, 0 requests
    "overhead_ms": 0.5,  # Gateway.complete CPU beyond litellm.acompletion
    "mlflow": 10.0,      # workbench >= 10x mlflow.genai.evaluate
    "local": 0.95,       # embedded model tokens/s through the gateway >= 95% of direct
    "multi": 1.6,        # both cores >= 1.6x single-process plain litellm
}

# ---- the evaluation every arm runs ---------------------------------------------------------

_TICKETS = [
    ("I love the new dashboard", "positive"),
    ("I want a refund for order", "negative"),
    ("The parcel arrived broken", "negative"),
    ("Great support, thank you", "positive"),
    ("Delivery was late again", "negative"),
    ("Works exactly as described", "positive"),
    ("Nobody answers my emails", "negative"),  # the benchmark 'model' gets this one wrong
    ("Fast and friendly service", "positive"),
]

PROMPTS: dict[str, Any] = {
    "bare": {"template": "Sentiment of: {{ticket}}"},
    "guided": {"messages": [
        {"role": "system", "content": "Answer with one word: positive or negative."},
        {"role": "user", "content": "{{ticket}}"}]},
    "question": {"template": "Is this customer satisfied? Answer positive or negative.\n\n"
                             "{{ticket}}"},
    "fewshot": {"messages": [
        {"role": "system", "content": "Classify the sentiment of a support ticket."},
        {"role": "user", "content": "Thanks, all sorted!"},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "Still waiting for my money back."},
        {"role": "assistant", "content": "negative"},
        {"role": "user", "content": "{{ticket}}"}]},
}


def tickets(n: int) -> list[dict[str, str]]:
    return [{"id": f"t{i:04d}", "ticket": f"{_TICKETS[i % 8][0]} (order {1000 + i})",
             "label": _TICKETS[i % 8][1]} for i in range(n)]


def write_experiment(home: Path, folder: str, base_url: str, *, examples: int,
                     prompts: list[str], trace: bool, scorers: list[dict[str, Any]],
                     name: str) -> Path:
    import yaml

    directory = home / "experiments" / folder
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "prompts").mkdir(exist_ok=True)
    with open(directory / "data" / "tickets.jsonl", "w") as f:
        for row in tickets(examples):
            f.write(json.dumps(row) + "\n")
    for prompt in prompts:
        (directory / "prompts" / f"{prompt}.yaml").write_text(yaml.safe_dump(PROMPTS[prompt]))
    spec = {
        "name": name,
        "eval_set": {"path": "data/tickets.jsonl"},
        "prompts": {p: f"prompts/{p}.yaml" for p in prompts},
        "models": {"loopback": {"model": "openai/test-model", "api_base": base_url,
                                "params": MODEL_PARAMS, "num_retries": 0}},
        "scorers": scorers,
        "primary_metric": scorers[0].get("name", scorers[0]["type"]),
        "run": {"concurrency": CONCURRENCY, "trace": trace},
    }
    (directory / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return directory


SCORERS = [{"type": "exact_match", "expected": "label"},
           {"type": "contains", "expected": "label", "whole_word": True}]


def rendered_calls(experiment: Any) -> list[list[dict[str, str]]]:
    """The messages of every call in the order run_matrix sends them."""
    return [variant.prompt.render(**example.inputs)
            for example in experiment.evalset.examples for variant in experiment.variants]


# ---- small utilities --------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Phases:
    """Wall time of Experiment.run's phases, by wrapping workbench functions from outside."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, phase: str) -> None:
        original = getattr(owner, attribute)
        seconds = self.seconds

        if asyncio.iscoroutinefunction(original):
            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started
            replacement: Any = timed_async
        else:
            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started
            replacement = timed
        setattr(owner, attribute, replacement)
        self._undo.append(lambda: setattr(owner, attribute, original))

    def install(self) -> Phases:
        import mlflow

        import workbench.experiment as experiment
        import workbench.results as results
        import workbench.tracking as tracking

        self.wrap(experiment.Experiment, "plan", "plan")
        self.wrap(experiment, "run_matrix", "calls")
        self.wrap(results.Results, "compare", "stats")
        self.wrap(experiment.Experiment, "_track", "mlflow")
        self.wrap(tracking, "log_traces", "mlflow.spans")
        self.wrap(mlflow, "flush_trace_async_logging", "mlflow.flush")
        return self

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()


def timed_run(experiment: Any, phases: Phases | None = None, **options: Any
              ) -> dict[str, Any]:
    if phases is not None:
        phases.seconds.clear()
    from workbench.gateway.workers import pool

    workers = pool(options["workers"]) if options.get("workers", 1) > 1 else []
    started, cpu = time.perf_counter(), time.process_time()
    workers_cpu = sum(cpu_seconds(w.pid) for w in workers)
    results = experiment.run(progress=False, **options)
    wall = time.perf_counter() - started
    workers_cpu = sum(cpu_seconds(w.pid) for w in workers) - workers_cpu
    frame = results.frame
    score = float(frame[f"score.{results.primary}"].mean()) if len(frame) else None
    return {"wall": wall, "cpu": time.process_time() - cpu + workers_cpu,
            "workers_cpu": workers_cpu, "rows": len(frame),
            "errors": len(results.errors), "phases": dict(phases.seconds) if phases else {},
            "score": score}


@contextlib.contextmanager
def collector_untouched() -> Iterator[None]:
    """The run without ``collector.quiet()``: Python's own collector settings throughout."""
    from workbench import collector

    quiet = collector.quiet
    collector.quiet = contextlib.nullcontext  # type: ignore[assignment]
    try:
        yield
    finally:
        collector.quiet = quiet  # type: ignore[assignment]


def trace_count(home: Path) -> tuple[int, int]:
    """Traces, and LLM spans (one per traced call), in the store."""
    db = home / "mlruns" / "mlflow.db"
    if not db.exists():
        return 0, 0
    with contextlib.closing(sqlite3.connect(db)) as connection:
        traces = connection.execute("SELECT COUNT(*) FROM trace_info").fetchone()[0]
        spans = connection.execute("SELECT COUNT(*) FROM spans WHERE type='LLM'").fetchone()[0]
    return int(traces), int(spans)


# ---- worker processes ---------------------------------------------------------------------------

class Worker:
    """This script in ``--worker`` mode: a separate process steered with JSON lines."""

    def __init__(self, kind: str, home: Path, *args: str) -> None:
        self.kind = kind
        self.log = open(home / f"worker-{kind}-{id(self)}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", kind, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def read(self, timeout_hint: str = "") -> dict[str, Any]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise RuntimeError(f"worker {self.kind} exited {timeout_hint}; see {self.log.name}")

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def reply(payload: dict[str, Any]) -> None:
    print("@@" + json.dumps(payload), flush=True)


async def plain_calls(base_url: str, jobs: list[list[dict[str, str]]], concurrency: int,
                      model: str = "openai/test-model") -> int:
    """Plain litellm.acompletion under an asyncio semaphore; returns the errors."""
    import litellm

    semaphore = asyncio.Semaphore(concurrency)
    errors = 0

    async def one(messages: list[dict[str, str]]) -> None:
        nonlocal errors
        async with semaphore:
            try:
                response = await litellm.acompletion(
                    model=model, api_base=base_url, api_key="none",
                    messages=messages, timeout=120, max_retries=0, **MODEL_PARAMS)
                response.choices[0].message.content  # noqa: B018
            except Exception:
                errors += 1

    await asyncio.gather(*(one(m) for m in jobs))
    return errors


def plain_here(base_url: str, calls: list[list[dict[str, str]]], concurrency: int
               ) -> dict[str, Any]:
    """``plain_calls`` in this (the workbench's) process, for a model name of its own: the
    workbench registered the price of its model with litellm, which this arm must not
    inherit (plain litellm would search its price table on each call)."""
    started, cpu = time.perf_counter(), time.process_time()
    errors = asyncio.run(plain_calls(base_url, calls, concurrency, "openai/plain-model"))
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
            "errors": errors}


def worker_plain(base_url: str, calls_file: str) -> int:
    """``plain_calls`` in a process of its own (only litellm imported); never a Router."""
    import litellm

    litellm.suppress_debug_info = True
    calls = json.loads(Path(calls_file).read_text())
    loop = asyncio.new_event_loop()

    def run(jobs: list[list[dict[str, str]]], concurrency: int) -> Any:
        return plain_calls(base_url, jobs, concurrency)

    loop.run_until_complete(run(calls[:20], 10))  # imports, HTTP session, first-call caches
    reply({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        jobs = calls[command["start"]:command["stop"]]
        if command.get("barrier"):
            reply({"armed": True})
            sys.stdin.readline()  # the go line: both workers start together
        started, cpu = time.time(), time.process_time()
        errors = loop.run_until_complete(run(jobs, command["concurrency"]))
        reply({"start": started, "end": time.time(), "cpu": time.process_time() - cpu,
               "calls": len(jobs), "errors": errors})
    return 0


def worker_overhead(base_url: str, calls: int, rounds: int, home: str) -> int:
    """CPU per call at zero latency: litellm, Router, Gateway (each with its own model name so
    that no arm inherits another's litellm state), then a cProfile of the gateway path."""
    import litellm

    import workbench  # noqa: F401  (offline defaults)
    from workbench.gateway.cache import ResponseCache
    from workbench.gateway.client import Gateway
    from workbench.gateway.config import ModelConfig, _litellm_params

    litellm.suppress_debug_info = True
    loop = asyncio.new_event_loop()
    concurrency = 10

    def config(model: str) -> ModelConfig:
        return ModelConfig(model=f"openai/{model}", api_base=base_url, params=MODEL_PARAMS,
                           num_retries=0)

    def gateway_router(cfg: ModelConfig) -> Any:
        # the Router as Gateway._router builds it (the gateway uses one only for a model
        # with fallbacks; this arm shows what it would cost for one without)
        return litellm.Router(
            model_list=[{"model_name": "m0", "litellm_params": _litellm_params(cfg)}],
            num_retries=cfg.num_retries, retry_after=0, timeout=cfg.timeout, fallbacks=[],
            disable_cooldowns=True, allowed_fails=1, cooldown_time=30)

    plain_cfg, router_cfg = config("bench-plain"), config("bench-router")
    router = gateway_router(router_cfg)
    gateway_cfg, rerun_cfg = config("bench-gateway"), config("bench-rerun")
    # a response cache as Experiment.run opens one: every call is a miss and a put
    cache = ResponseCache(Path(home) / "overhead-cache.sqlite")
    gateway = Gateway(cache, max_concurrency=concurrency)
    # an earlier run called this model already
    loop.run_until_complete(Gateway(None).complete(
        rerun_cfg, [{"role": "user", "content": "an earlier run"}], use_cache=False))

    def plain(messages: list[dict[str, str]]) -> Any:
        return litellm.acompletion(model=plain_cfg.model, api_base=base_url, api_key="none",
                                   messages=messages, timeout=plain_cfg.timeout,
                                   max_retries=0, **MODEL_PARAMS)

    # Gateway arms do what Experiment.run does around each call: the run's cache keys are
    # computed and read in one query first (preflight), and each call is passed its key.
    def via_gateway(gw: Any, cfg: ModelConfig) -> Callable[..., Any]:
        def call(m: list[dict[str, str]], key: str | None = None) -> Any:
            return gw.complete(cfg, m, key=key)
        call.config = cfg  # type: ignore[attr-defined]
        return call

    # A model litellm has a price for: the gateway registers none, so these two arms take
    # the same path through litellm (the bench-* models are not in litellm's table).
    table_cfg = ModelConfig(model=TABLE_MODEL, api_base=base_url, params=MODEL_PARAMS,
                            num_retries=0)

    def plain_table(messages: list[dict[str, str]]) -> Any:
        return litellm.acompletion(model=TABLE_MODEL, api_base=base_url, api_key="none",
                                   messages=messages, timeout=table_cfg.timeout,
                                   max_retries=0, **MODEL_PARAMS)

    arms: dict[str, Callable[..., Any]] = {
        "litellm.acompletion": plain,
        "Router.acompletion": lambda m, key=None: router.acompletion(
            model="m0", messages=m, **MODEL_PARAMS),
        "Gateway.complete": via_gateway(gateway, gateway_cfg),
        TABLE_PLAIN: plain_table,
        TABLE_GATEWAY: via_gateway(gateway, table_cfg),
    }

    def fresh_rerun() -> None:
        rerun = Gateway(cache, max_concurrency=concurrency)  # as every Experiment.run does
        arms["Gateway.complete, later run"] = via_gateway(rerun, rerun_cfg)

    async def run(arm: str, tag: str, n: int) -> tuple[float, float]:
        from workbench.gateway.cache import cache_key

        call = arms[arm]
        semaphore = asyncio.Semaphore(concurrency)
        messages = [[{"role": "user", "content": f"{tag} ticket {i}: parcel broken"}]
                    for i in range(n)]
        started, cpu = time.perf_counter(), time.process_time()
        cfg = getattr(call, "config", None)
        keys: list[str | None] = [None] * n
        if cfg is not None:
            keys = [cache_key(cfg.model, cfg.params, m, 0, cfg.api_base) for m in messages]
            cache.prefetch(k for k in keys if k is not None)

        async def one(i: int) -> None:
            async with semaphore:
                if keys[i] is None:
                    await call(messages[i])
                else:
                    await call(messages[i], key=keys[i])

        await asyncio.gather(*(one(i) for i in range(n)))
        return (time.process_time() - cpu) / n * 1e3, (time.perf_counter() - started) / n * 1e3

    fresh_rerun()
    for arm in arms:
        loop.run_until_complete(run(arm, f"warm-{arm}", 40))
    reply({"ready": True})
    sys.stdin.readline()
    cpu: dict[str, list[float]] = {arm: [] for arm in arms}
    wall: dict[str, list[float]] = {arm: [] for arm in arms}
    for r in range(rounds):
        fresh_rerun()
        for arm in list(arms)[::1 if r % 2 == 0 else -1]:
            c, w = loop.run_until_complete(run(arm, f"r{r}-{arm}", calls))
            cpu[arm].append(c)
            wall[arm].append(w)

    pieces = loop.run_until_complete(own_steps(cache, gateway_cfg, rerun_cfg, router))
    in_context = steps_in_context(loop, lambda n: run("Gateway.complete", "context", n), cache,
                                  calls)
    profiles = {}
    for arm in arms:
        profile = cProfile.Profile()
        n = max(100, calls // 2)
        profile.enable()
        loop.run_until_complete(run(arm, f"profile-{arm}", n))
        profile.disable()
        profiles[arm] = profile_breakdown(pstats.Stats(profile), n)
    reply({"cpu": cpu, "wall": wall, "calls": calls, "concurrency": concurrency,
           "profiles": profiles, "pieces": pieces, "in_context": in_context})
    return 0


async def own_steps(cache: Any, config: Any, rerun_config: Any, router: Any
                    ) -> dict[str, float]:
    """The gateway's own per-call steps, each timed alone (ms per call, no profiler)."""
    from workbench.gateway.cache import cache_key
    from workbench.gateway.client import _Pacing
    from workbench.gateway.config import Completion
    from workbench.gateway.pricing import price

    n = 500
    messages = [{"role": "user", "content": "ticket 1: parcel broken"}]
    response = await router.acompletion(model="m0", messages=messages, **MODEL_PARAMS)
    keys = [cache_key(config.model, config.params, [{"role": "user", "content": f"k{i}"}], 0)
            for i in range(2 * n)]
    cache.prefetch(keys[:n])  # as preflight does for a run
    record = Completion("negative", config.model, 8, 1, 0.0, 0.1).record()
    pacing = _Pacing(config, 50)

    def each(step: Callable[[int], Any]) -> float:
        started = time.perf_counter()
        for i in range(n):
            step(i)
        return (time.perf_counter() - started) / n * 1e3

    async def slots() -> float:
        started = time.perf_counter()
        for _ in range(n):
            async with pacing.concurrency.slot():
                pass
        return (time.perf_counter() - started) / n * 1e3

    return {
        "cache_key()": each(lambda i: cache_key(config.model, config.params, messages, i,
                                                config.api_base)),
        "ResponseCache.get (prefetched miss)": each(lambda i: cache.get(keys[i])),
        "ResponseCache.put (queued)": each(
            lambda i: cache.put(keys[n + i], config.model, record)),
        "AdaptiveConcurrency.slot()": await slots(),
        "price() with the response (litellm.completion_cost)":
            each(lambda i: price(config, 8, 1, response)),
        "Completion(...).record()": each(
            lambda i: Completion("negative", config.model, 8, 1, 0.0, 0.1).record()),
    }


def steps_in_context(loop: asyncio.AbstractEventLoop, run: Callable[[int], Any], cache: Any,
                     calls: int) -> dict[str, float]:
    """The same steps timed inside real gateway calls (wall ms on the event-loop thread)."""
    import workbench.gateway.client as gateway_module

    spent: dict[str, float] = {}

    def timer(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - started
        return timed

    originals = (gateway_module.cache_key, gateway_module.price, cache.get, cache.put)
    gateway_module.cache_key = timer("cache_key()", gateway_module.cache_key)
    gateway_module.price = timer("price() with the response (litellm.completion_cost)",
                                 gateway_module.price)
    cache.get = timer("ResponseCache.get (prefetched miss)", cache.get)
    cache.put = timer("ResponseCache.put (queued)", cache.put)
    try:
        loop.run_until_complete(run(calls))
    finally:
        gateway_module.cache_key, gateway_module.price = originals[:2]
        del cache.get, cache.put  # back to the class's methods
    return {label: seconds / calls * 1e3 for label, seconds in spent.items()}


# (label, file suffix, function name) of the functions whose cumulative time per call is shown
PROFILE_POINTS = [
    ("Gateway.complete (total)", "workbench/gateway/client.py", "complete"),
    ("  cache_key", "workbench/gateway/cache.py", "cache_key"),
    ("  ResponseCache.get", "workbench/gateway/cache.py", "get"),
    ("  ResponseCache.put", "workbench/gateway/cache.py", "put"),
    ("  Completion.record", "workbench/gateway/config.py", "record"),
    ("  _Pacing / AdaptiveConcurrency.slot", "workbench/gateway/limits.py", "slot"),
    ("  Gateway._call", "workbench/gateway/client.py", "_call"),
    ("    price() -> litellm.completion_cost", "workbench/gateway/pricing.py", "price"),
    ("    Router.acompletion", "litellm/router_rust/core.py", "acompletion"),
    ("      litellm.acompletion (inside)", "litellm/main.py", "acompletion"),
    ("litellm zero-cost diagnostic", "litellm/litellm_core_utils/litellm_logging.py",
     "_record_zero_cost_diagnostic"),
    ("litellm response_cost_calculator", "litellm/litellm_core_utils/litellm_logging.py",
     "response_cost_calculator"),
    ("litellm async_success_handler", "litellm/litellm_core_utils/litellm_logging.py",
     "async_success_handler"),
]


def profile_breakdown(stats: pstats.Stats, calls: int) -> dict[str, Any]:
    table: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for label, suffix, name in PROFILE_POINTS:
        total = sum(entry[3] for (file, _line, func), entry in raw.items()
                    if func == name and file.replace("\\", "/").endswith(suffix))
        if total:
            table[label] = total / calls * 1e3
    total_tt = sum(entry[2] for entry in raw.values())
    own = sum(entry[2] for (file, _l, _f), entry in raw.items()
              if "/workbench/" in file.replace("\\", "/"))
    return {"ms_per_call": table, "profiled_ms_per_call": total_tt / calls * 1e3,
            "workbench_self_ms_per_call": own / calls * 1e3}


LOCAL_PROMPTS = [
    "Write a short, polite reply to a customer whose parcel arrived {n} days late.",
    "Explain to customer {n} how to reset a forgotten password, in three steps.",
    "Summarise this ticket for an agent: order {n} was charged twice, customer is upset.",
    "Draft an apology to customer {n} for a broken coffee machine and offer a replacement.",
    "Tell customer {n} that their refund was approved and when the money will arrive.",
]


def worker_local(calls: int, seconds: float) -> int:
    """The embedded model: Gateway.complete (local/smollm2) vs local_model.chat, alternating."""
    import workbench  # noqa: F401
    from workbench.gateway import local_model
    from workbench.gateway.client import Gateway
    from workbench.gateway.config import ModelConfig

    params = {"temperature": 0, "max_tokens": 64}
    config = ModelConfig(model="local/smollm2", params=params)
    gateway = Gateway(None)
    loop = asyncio.new_event_loop()
    loaded = time.perf_counter()
    local_model.server()
    load_s = time.perf_counter() - loaded

    def messages(i: int) -> list[dict[str, str]]:
        text = LOCAL_PROMPTS[i % len(LOCAL_PROMPTS)].format(n=100 + i)
        return [{"role": "user", "content": text}]

    def direct(i: int) -> tuple[float, int]:
        started = time.perf_counter()
        answer = local_model.chat(messages(i), **params)
        return time.perf_counter() - started, answer.completion_tokens

    def through_gateway(i: int) -> tuple[float, int]:
        started = time.perf_counter()
        answer = loop.run_until_complete(gateway.complete(config, messages(i)))
        return time.perf_counter() - started, answer.completion_tokens

    through_gateway(-1)
    direct(-2)  # warm both paths (litellm import, provider registration, first decode)
    reply({"ready": True, "load_s": load_s})
    sys.stdin.readline()
    arms = {"local_model.chat": direct, "Gateway.complete": through_gateway}
    rows: dict[str, list[tuple[float, int]]] = {arm: [] for arm in arms}
    deadline = time.perf_counter() + seconds
    for i in range(calls):
        if time.perf_counter() > deadline:
            break
        order = list(arms) if i % 2 == 0 else list(reversed(arms))  # prompt-cache fairness
        for arm in order:
            rows[arm].append(arms[arm](i))
    reply({"rows": rows})
    return 0


# ---- the items ----------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        self.args = args
        self.home = home
        self.results: dict[str, Any] = {}
        self.server: LoopbackServer | None = None
        self.phases: Phases | None = None
        self._experiments: dict[str, Any] = {}
        self.load = (os.getloadavg()[0], float("nan"))

    # -- shared setup --
    def experiment(self, key: str) -> Any:
        from workbench import Experiment

        if key not in self._experiments:
            assert self.server is not None
            base = self.server.base_url
            if key in ("trace-off", "trace-on"):
                folder = write_experiment(self.home, key, base, examples=self.args.examples,
                                          prompts=list(PROMPTS), trace=key == "trace-on",
                                          scorers=SCORERS, name="throughput")
            else:  # one variant, one scorer: what mlflow.genai.evaluate gets
                folder = write_experiment(self.home, key, base, examples=self.args.eval_rows,
                                          prompts=["bare"], trace=True,
                                          scorers=[{"type": "exact_match",
                                                    "expected": "label"}],
                                          name="vs-mlflow")
            self._experiments[key] = Experiment.from_yaml(folder)
        return self._experiments[key]

    def warm_up(self, workers: int = 1) -> None:
        """Create the MLflow store, import everything and start the worker processes once,
        outside any timing (plain litellm's processes are started before timing too)."""
        started = time.perf_counter()
        experiment = self.experiment("trace-on")
        experiment.run(limit=5, progress=False, use_cache=False, workers=workers)
        self.phases = Phases().install()
        log(f"warm-up (MLflow store, imports) {time.perf_counter() - started:.1f}s")

    def count(self) -> int:
        assert self.server is not None
        return self.server.count()

    # -- 1 and 6 --
    def throughput(self, single: bool, multi: bool) -> None:
        assert self.server is not None
        self.server.set_latency(LATENCY)
        on, off = self.experiment("trace-on"), self.experiment("trace-off")
        calls = rendered_calls(off)
        calls_file = self.home / "calls.json"
        calls_file.write_text(json.dumps(calls))
        total = len(calls)
        workers = [Worker("plain", self.home, self.server.base_url, str(calls_file))
                   for _ in range(2 if multi else 1)]
        heap_objects = len(gc.get_objects())
        try:
            for worker in workers:
                worker.read("during start-up")
            arms: list[str] = ["plain litellm, 1 process"]
            if single:
                arms += ["plain litellm, in this process", "workbench, trace off",
                         "workbench, trace on", UNTOUCHED]
            if multi:
                arms += ["plain litellm, 2 processes", "workbench, 2 processes", DOUBLED]
            runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
            for r in range(self.args.rounds):
                for arm in arms[::1 if r % 2 == 0 else -1]:
                    before, traces_before = self.count(), trace_count(self.home)
                    server_cpu = self.server.cpu_seconds()
                    if arm == "plain litellm, 1 process":
                        done = [workers[0].ask({"start": 0, "stop": total,
                                                "concurrency": CONCURRENCY})]
                        run = {"wall": done[0]["end"] - done[0]["start"],
                               "cpu": done[0]["cpu"], "errors": done[0]["errors"]}
                    elif arm in ("plain litellm, 2 processes", DOUBLED):
                        half = total // 2
                        each = CONCURRENCY if arm == DOUBLED else CONCURRENCY // 2
                        for i, worker in enumerate(workers):
                            worker.send({"start": i * half, "stop": total if i else half,
                                         "concurrency": each, "barrier": True})
                        for worker in workers:
                            worker.read()
                        for worker in workers:
                            worker.send({"go": True})
                        done = [worker.read() for worker in workers]
                        run = {"wall": max(d["end"] for d in done)
                               - min(d["start"] for d in done),
                               "cpu": sum(d["cpu"] for d in done),
                               "errors": sum(d["errors"] for d in done)}
                    elif arm == "plain litellm, in this process":
                        run = plain_here(self.server.base_url, calls, CONCURRENCY)
                    elif arm == UNTOUCHED:
                        with collector_untouched():
                            run = timed_run(off, self.phases, use_cache=False)
                    elif arm.startswith("workbench, ") and arm.endswith(" processes"):
                        run = timed_run(off, self.phases, use_cache=False,
                                        workers=int(arm.split()[1]))
                    else:
                        run = timed_run(on if arm.endswith("on") else off, self.phases,
                                        use_cache=False)
                    run["requests"] = self.count() - before
                    run["server_cpu"] = self.server.cpu_seconds() - server_cpu
                    run["traces"], run["spans"] = (
                        a - b for a, b in zip(trace_count(self.home), traces_before, strict=True))
                    run["calls_per_s"] = total / run["wall"]
                    runs[arm].append(run)
                    log(f"[1/6] round {r + 1} {arm}: {run['wall']:.2f}s "
                        f"({run['calls_per_s']:.0f} calls/s, {run['errors']} errors, "
                        f"{run['requests']} requests, {run['traces']} traces, "
                        f"{run['spans']} LLM spans)")
        finally:
            for worker in workers:
                worker.close()
        self.results["throughput"] = {"calls": total, "runs": runs, "single": single,
                                      "multi": multi, "heap_objects": heap_objects}

    # -- 2 --
    def cached(self) -> None:
        assert self.server is not None
        experiment = self.experiment("trace-on")
        if not self.results.get("throughput", {}).get("single"):  # fill the cache (untimed)
            self.server.set_latency(0.0)
            experiment.run(progress=False, track=False)
        runs = []
        for r in range(self.args.rounds):
            before = self.count()
            run = timed_run(experiment, self.phases, use_cache=True)
            run["requests"] = self.count() - before
            runs.append(run)
            log(f"[2] round {r + 1} cached run: {run['wall']:.2f}s, {run['requests']} requests, "
                f"{run['rows']} rows")
        self.results["cached"] = {"runs": runs}

    # -- 3 --
    def overhead(self) -> None:
        assert self.server is not None
        self.server.set_latency(0.0)
        worker = Worker("overhead", self.home, self.server.base_url,
                        str(self.args.overhead_calls), str(self.args.rounds), str(self.home))
        try:
            worker.read("during start-up")
            log("[3] measuring per-call CPU (zero latency) ...")
            self.results["overhead"] = worker.ask({"go": True})
        finally:
            worker.close()
        for arm, values in self.results["overhead"]["cpu"].items():
            log(f"[3] {arm}: {median(values):.2f} ms CPU/call {[round(v, 2) for v in values]}")

    # -- 4 --
    def versus_mlflow(self) -> None:
        assert self.server is not None
        os.environ["MLFLOW_GENAI_EVAL_MAX_WORKERS"] = str(self.args.mlflow_workers)
        os.environ["MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT"] = "0"  # no throttle, like the runner
        import litellm
        import mlflow
        from mlflow.genai.scorers import scorer

        from workbench.settings import tracking_uri

        self.server.set_latency(LATENCY)
        experiment = self.experiment("vs-mlflow")
        base_url = self.server.base_url
        template = PROMPTS["bare"]["template"]
        rows = tickets(self.args.eval_rows)
        data = [{"inputs": {"ticket": row["ticket"]}, "expectations": {"label": row["label"]}}
                for row in rows]

        def predict_fn(ticket: str) -> str:
            # its own model name: no workbench Router ever touched this model's litellm state
            response = litellm.completion(
                model="openai/mlflow-model", api_base=base_url, api_key="none",
                messages=[{"role": "user", "content": template.replace("{{ticket}}", ticket)}],
                timeout=120, max_retries=0, **MODEL_PARAMS)
            return response.choices[0].message.content or ""

        @scorer
        def exact_match(outputs: str, expectations: dict[str, str]) -> bool:
            return outputs.strip().lower() == expectations["label"].lower()

        mlflow.set_tracking_uri(tracking_uri())
        mlflow.set_experiment("vs-mlflow-genai-evaluate")
        runs: dict[str, list[dict[str, Any]]] = {"workbench": [], "mlflow.genai.evaluate": []}
        for r in range(self.args.rounds):
            for arm in list(runs)[::1 if r % 2 == 0 else -1]:
                before, traces_before = self.count(), trace_count(self.home)
                if arm == "workbench":
                    run = timed_run(experiment, self.phases, use_cache=False)
                    score = run["score"]
                else:
                    started, cpu = time.perf_counter(), time.process_time()
                    with contextlib.redirect_stdout(sys.stderr):
                        evaluation = mlflow.genai.evaluate(data=data, predict_fn=predict_fn,
                                                           scorers=[exact_match])
                    run = {"wall": time.perf_counter() - started,
                           "cpu": time.process_time() - cpu, "rows": len(data)}
                    score = evaluation.metrics.get("exact_match/mean")
                run["requests"] = self.count() - before
                run["traces"], run["spans"] = (
                        a - b for a, b in zip(trace_count(self.home), traces_before, strict=True))
                run["rows_per_s"] = len(rows) / run["wall"]
                run["score"] = score
                runs[arm].append(run)
                log(f"[4] round {r + 1} {arm}: {run['wall']:.2f}s ({run['rows_per_s']:.1f} rows/s,"
                    f" {run['requests']} requests, {run['traces']} traces, "
                    f"{run['spans']} LLM spans)")
        self.results["mlflow"] = {"rows": len(rows), "runs": runs,
                                  "workers": self.args.mlflow_workers}

    # -- 5 --
    def local(self) -> None:
        worker = Worker("local", self.home, str(self.args.local_calls),
                        str(self.args.local_seconds))
        try:
            ready = worker.read("while loading the embedded model")
            log(f"[5] embedded model loaded in {ready['load_s']:.1f}s; "
                f"{self.args.local_calls} calls per arm, at most {self.args.local_seconds:.0f}s")
            self.results["local"] = worker.ask({"go": True})
        finally:
            worker.close()
        for arm, rows in self.results["local"]["rows"].items():
            seconds, tokens = sum(r[0] for r in rows), sum(r[1] for r in rows)
            log(f"[5] {arm}: {len(rows)} calls, {tokens} tokens, {tokens / seconds:.1f} tok/s")


# ---- reporting ----------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def fmt_phases(runs: list[dict[str, Any]]) -> str:
    names = ["plan", "calls", "stats", "mlflow", "mlflow.spans", "mlflow.flush"]
    parts = []
    for name in names:
        values = [run.get("phases", {}).get(name) for run in runs]
        values = [v for v in values if v is not None]
        if values:
            parts.append(f"{name} {median(values):.2f}")
    return ", ".join(parts)


def section_throughput(data: dict[str, Any], rounds: int) -> dict[str, list[str]]:
    runs, calls = data["runs"], data["calls"]
    ideal = calls * LATENCY / CONCURRENCY
    plain = median([r["calls_per_s"] for r in runs["plain litellm, 1 process"]])
    out: dict[str, list[str]] = {}
    if data["single"]:
        lines = [
            f"### 1. {calls} calls, concurrency {CONCURRENCY}, {LATENCY * 1000:.0f} ms "
            "server latency",
            "",
            f"Ideal wall time = calls x latency / concurrency = {ideal:.1f} s. Plain litellm runs "
            "in a fresh process of its own (only litellm imported), and again in this process "
            "(the same loop, after mlflow, pandas and datasets were imported and used, as in a "
            "notebook; under a model name of its own, since the workbench registered its "
            "model's price with litellm in this process); the workbench is `Experiment.run` "
            "in this process: preflight, calls, two scorers, statistics and MLflow logging "
            "(parent + 4 child runs, tables, prompt versions). CPU is the client process's "
            "CPU time (the server process is not counted). A warm-up run comes first, so each "
            "timed run is a later run in its process (see item 3 for what that costs).",
            "",
            "| arm | wall s | calls/s | of ideal | vs plain | CPU ms/call | server CPU ms/call "
            "| traces / LLM spans stored | phases (s) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for arm in ("plain litellm, 1 process", "plain litellm, in this process",
                    "workbench, trace off", "workbench, trace on", UNTOUCHED):
            rs = runs[arm]
            rate = median([r["calls_per_s"] for r in rs])
            lines.append(
                f"| {arm} | {median([r['wall'] for r in rs]):.2f} | {rate:.0f} | "
                f"{ideal / median([r['wall'] for r in rs]):.2f} | {rate / plain:.2f} | "
                f"{median([r['cpu'] for r in rs]) / calls * 1e3:.2f} | "
                f"{median([r['server_cpu'] for r in rs]) / calls * 1e3:.2f} | "
                f"{median([r['traces'] for r in rs]):.0f} / "
                f"{median([r['spans'] for r in rs]):.0f} | "
                f"{fmt_phases(rs) or '-'} |")
        def ratios(arm: str) -> list[float]:  # round by round, against plain litellm
            return [r["calls_per_s"] / p["calls_per_s"]
                    for r, p in zip(runs[arm], runs["plain litellm, 1 process"], strict=True)]

        def paired(arm: str) -> str:
            return (", ".join(f"{x:.2f}" for x in ratios(arm))
                    + f" (median {median(ratios(arm)):.2f})")

        def below(arm: str) -> str:
            return f"{sum(x < TARGETS['single'] for x in ratios(arm))} of {len(ratios(arm))}"

        off = median([r["calls_per_s"] for r in runs["workbench, trace off"]]) / plain
        on = median([r["calls_per_s"] for r in runs["workbench, trace on"]]) / plain
        calls_only = median([calls / r["phases"]["calls"] for r in runs["workbench, trace off"]
                             if r["phases"].get("calls")]) / plain
        traced = median([r["spans"] for r in runs["workbench, trace on"]])
        here = median([r["calls_per_s"] for r in runs["plain litellm, in this process"]])
        lines += [
            "",
            f"- Target (1, single process): workbench >= {TARGETS['single']:.0%} of plain "
            "litellm's calls/s: "
            f"trace off {off:.2f} {verdict(off >= TARGETS['single'])}, "
            f"trace on {on:.2f} {verdict(on >= TARGETS['single'])} of plain litellm in a "
            f"fresh process ({below('workbench, trace off')} and "
            f"{below('workbench, trace on')} rounds below {TARGETS['single']:.2f}); against "
            "plain litellm in the same process, trace off "
            f"{off * plain / here:.2f}, trace on {on * plain / here:.2f}. The calls phase "
            "alone (runner + gateway + scoring, without preflight, statistics and MLflow) "
            f"reaches {calls_only:.2f} of plain litellm in a fresh process.",
            f"- Plain litellm itself runs at {here / plain:.2f} of its fresh-process speed in "
            "this process. The workbench's own code is about 0.03 ms per call in the runner "
            "and 0.1-0.2 ms in the gateway (item 3). Round by round (each ratio against plain "
            "litellm in a fresh process in the same round): trace off "
            f"{paired('workbench, trace off')}; trace on {paired('workbench, trace on')}; "
            f"plain litellm in this process {paired('plain litellm, in this process')}.",
            "- The model here is in no price table. Plain litellm then searches its table for "
            "a near match on every call; the workbench registers the model's price with "
            "litellm once (zero: none is known), which saves about 0.9 ms of CPU per call "
            "(item 3 also compares the two on a model that is in litellm's table).",
        ]
        base, bare = runs["workbench, trace off"], runs[UNTOUCHED]
        cpu_ratio = [a["cpu"] / b["cpu"] for a, b in zip(base, bare, strict=True)]
        wall_ratio = [a["calls_per_s"] / b["calls_per_s"] for a, b in zip(base, bare, strict=True)]
        lines.append(
            "- Collector handling (`collector.quiet()`: heap frozen, young collections less "
            "often), trace off against the same run with Python's own collector settings, "
            f"round by round: CPU per call {', '.join(f'{x:.2f}' for x in cpu_ratio)} "
            f"(median {median(cpu_ratio):.2f}; "
            f"{median([r['cpu'] for r in base]) / calls * 1e3:.2f} against "
            f"{median([r['cpu'] for r in bare]) / calls * 1e3:.2f} ms), calls/s "
            f"{', '.join(f'{x:.2f}' for x in wall_ratio)} (median {median(wall_ratio):.2f}). "
            f"This process held {data.get('heap_objects', 0):,} objects when the item began.")
        spans_s = median([r["phases"].get("mlflow.spans", 0.0)
                          for r in runs["workbench, trace on"]])
        lines.append(
            f"- With `run.trace: true` each call is an LLM span ({traced:.0f} of {calls} "
            "stored, median) in one trace per variant run and 500 calls, linked to the run; "
            f"writing them took {spans_s:.2f} s ({spans_s / calls * 1e3:.2f} ms a call, "
            "most of it MLflow's store inserting the span rows). A trace per call cost 30-40 "
            "ms of MLflow store work per call (`start_trace` alone ~10 ms), 60-77 s for "
            "2,000 calls.")
        out["1"] = lines
    if data["multi"]:
        two = median([r["calls_per_s"] for r in runs["plain litellm, 2 processes"]])
        wb_two = median([r["calls_per_s"] for r in runs["workbench, 2 processes"]])
        lines = [
            "### 6. Both cores: two processes vs one plain-litellm process",
            "",
            f"The same {calls} calls at total concurrency {CONCURRENCY}. Plain litellm: one "
            f"process, or two processes with {calls // 2} calls and concurrency "
            f"{CONCURRENCY // 2} each, started together (wall = first start to last end). "
            "Workbench: `Experiment.run(workers=2)` with trace off: two worker processes "
            f"make the calls, {CONCURRENCY // 2} in flight each (and a few queued), taking "
            "calls as they free up; caching, scoring, statistics and MLflow logging in this "
            "process, included. Client CPU counts every client process (for the workbench: "
            "this one and its two workers).",
            "",
            "| arm | wall s | calls/s | vs 1 process | client CPU ms/call | server CPU ms/call "
            "| client cores busy |",
            "|---|---|---|---|---|---|---|",
        ]
        for arm in ("plain litellm, 1 process", "plain litellm, 2 processes",
                    "workbench, 2 processes", DOUBLED):
            rs = runs[arm]
            rate = median([r["calls_per_s"] for r in rs])
            lines.append(f"| {arm} | {median([r['wall'] for r in rs]):.2f} | {rate:.0f} | "
                         f"{rate / plain:.2f} | "
                         f"{median([r['cpu'] for r in rs]) / calls * 1e3:.2f} | "
                         f"{median([r['server_cpu'] for r in rs]) / calls * 1e3:.2f} | "
                         f"{median([r['cpu'] / r['wall'] for r in rs]):.2f} |")
        lines += [
            "",
            f"- Target (6, both cores): the workbench with two processes >= "
            f"{TARGETS['multi']}x single-process plain litellm: {wb_two / plain:.2f}x "
            f"{verdict(wb_two / plain >= TARGETS['multi'])} (two plain-litellm processes reach "
            f"{two / plain:.2f}x in the same run).",
        ]
        busy = median([r["cpu"] / r["wall"] for r in runs["plain litellm, 2 processes"]])
        doubled = median([r["calls_per_s"] for r in runs[DOUBLED]])
        why = ("a process waits for answers part of the time" if doubled > two * 1.1
               else "the limit is CPU, not calls in flight")
        lines.append(
            f"- \"Client cores busy\" is client CPU seconds per wall second: two plain "
            f"processes kept {busy:.2f} of the 2 cores busy. The last row is not a target "
            f"arm: with {CONCURRENCY} calls in flight in each process ({2 * CONCURRENCY} in "
            f"all) two plain processes reach {doubled / plain:.2f}x, so at the target's "
            f"{CONCURRENCY} in flight {why}"
            " (the server shares the same 2 cores; its CPU is in the table).")
        if "workbench, trace off" in runs:
            alone = [a["calls_per_s"] / b["calls_per_s"] for a, b in
                     zip(runs["workbench, 2 processes"], runs["workbench, trace off"],
                         strict=True)]
            lines.append(
                "- Worker processes, `workers=2` against the same run made in one process "
                "(item 1, trace off, same rounds), calls/s round by round: "
                f"{', '.join(f'{x:.2f}' for x in alone)} (median {median(alone):.2f}).")
        wb = runs["workbench, 2 processes"]
        calls_phase = median([r["phases"].get("calls", float("nan")) for r in wb])
        lines.append(
            f"- The workbench's calls phase took {calls_phase:.2f} s against "
            f"{median([r['wall'] for r in runs['plain litellm, 2 processes']]):.2f} s for two "
            f"plain processes; MLflow logging after it took "
            f"{median([r['phases'].get('mlflow', float('nan')) for r in wb]):.2f} s. Its "
            f"workers used {median([r['workers_cpu'] for r in wb]) / calls * 1e3:.2f} ms of "
            f"CPU per call, this process "
            f"{median([r['cpu'] - r['workers_cpu'] for r in wb]) / calls * 1e3:.2f} ms "
            "(caching, scoring, MLflow).")
        out["6"] = lines
    return out


def section_cached(data: dict[str, Any]) -> list[str]:
    runs = data["runs"]
    wall = median([r["wall"] for r in runs])
    requests = max(r["requests"] for r in runs)
    rows = runs[0]["rows"]
    each = ", ".join(f"{r['wall']:.2f}" for r in runs)
    return [
        "### 2. The same run again, fully cached",
        "",
        f"`Experiment.run(use_cache=True)` on the {rows}-call run (trace on, MLflow logging "
        "included; cache hits make no traces).",
        "",
        "| wall s (median) | each round s | requests at the server | phases (s) |",
        "|---|---|---|---|",
        f"| {wall:.2f} | {each} | "
        f"{requests} | {fmt_phases(runs)} |",
        "",
        f"- Target (2, fully cached run): <= {TARGETS['cached_s']:.0f} s: {wall:.2f} s "
        f"{verdict(wall <= TARGETS['cached_s'])}; "
        f"zero requests at the server: {requests} {verdict(requests == 0)}.",
    ]


def section_overhead(data: dict[str, Any]) -> list[str]:
    cpu, wall = data["cpu"], data["wall"]
    base = median(cpu["litellm.acompletion"])
    lines = [
        "### 3. Per-call overhead beyond litellm (zero-latency server)",
        "",
        f"{data['calls']} calls per arm and round at concurrency {data['concurrency']}, in a "
        "process of its own; each arm uses its own model name so no arm inherits another's "
        "litellm state. The gateway has a response cache as in `Experiment.run` (each call a "
        "miss and a put; the keys are read in one query first, as preflight does). "
        "\"Later run\" is a new `Gateway` for a model an earlier `Gateway` already called, "
        "which is what every `Experiment.run` after the first in a process (a notebook) does. "
        "The gateway calls `litellm.acompletion` directly for a model without fallbacks; the "
        "`Router.acompletion` arm shows what litellm's Router would add (the gateway uses it "
        "only for models with fallbacks).",
        "",
        "| arm | CPU ms/call | beyond litellm.acompletion ms | each round | wall ms/call |",
        "|---|---|---|---|---|",
    ]
    for arm, values in cpu.items():
        lines.append(f"| {arm} | {median(values):.2f} | {median(values) - base:+.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in values)} | {median(wall[arm]):.2f} |")
    paired = [g - b for g, b in zip(cpu["Gateway.complete"], cpu["litellm.acompletion"],
                                    strict=True)]
    gateway = median(cpu["Gateway.complete"]) - base
    table = median(cpu[TABLE_GATEWAY]) - median(cpu[TABLE_PLAIN])
    table_paired = [g - b for g, b in zip(cpu[TABLE_GATEWAY], cpu[TABLE_PLAIN], strict=True)]
    router = median(cpu["Router.acompletion"]) - base
    later = median(cpu["Gateway.complete, later run"]) - base
    own = data["profiles"]["Gateway.complete"]["workbench_self_ms_per_call"]
    lines += [
        "",
        f"- Target (3, overhead per call): <= {TARGETS['overhead_ms']} ms: Gateway.complete "
        f"costs {gateway:+.2f} ms of CPU beyond litellm.acompletion {verdict(gateway <= 0.5)},"
        f" and {later:+.2f} ms in a later run of the same process "
        f"{verdict(later <= 0.5)}. litellm's Router would add {router:+.2f} ms (rounds "
        "vary by a few tenths of a millisecond on a shared machine, so read the split from "
        "the step timings and the profile below: the workbench's own code takes "
        f"{own:.2f} ms per call, profiled, as self time). Round by round, Gateway.complete "
        "minus litellm.acompletion: "
        f"{', '.join(f'{d:+.2f}' for d in paired)} ms.",
        f"- With {TABLE_MODEL}, a model in litellm's price table, both take the same path "
        f"through litellm: Gateway.complete costs {table:+.2f} ms beyond litellm.acompletion "
        f"{verdict(table <= 0.5)} (round by round "
        f"{', '.join(f'{d:+.2f}' for d in table_paired)} ms). The benchmark's own model is "
        "in no price table: litellm then searches its table for a near match on every call; "
        "the gateway registers a price for such a model once (the config's, else zero, "
        "still reported as unknown), which is why it can cost less than litellm alone.",
        "",
    ]
    tail = [
        "",
        "Profile of each arm (cProfile, cumulative ms per call; the profiler inflates every "
        "figure, so compare rows with each other, not with the tables above):",
        "",
    ]
    pieces, context = data.get("pieces", {}), data.get("in_context", {})
    if pieces:
        lines += [
            "The gateway's own steps: timed alone (a loop of 500, no other threads), and inside "
            "real `Gateway.complete` calls (wall time on the event-loop thread, no profiler):",
            "",
            "| step | alone ms/call | in the gateway ms/call |",
            "|---|---|---|",
            *[f"| {step} | {ms:.3f} | "
              f"{'' if step not in context else f'{context[step]:.3f}'} |"
              for step, ms in pieces.items()],
            f"| sum | {sum(pieces.values()):.3f} | {sum(context.values()):.3f} |",
            "",
            "No SQLite query runs on the event loop: SQLite releases the GIL while it works, "
            "and `litellm.acompletion` prepares each request in the loop's default executor "
            "(threads `asyncio_N`), so getting the GIL back made each query block the loop "
            "for about a millisecond (measured before the change: get 0.69-0.97 ms, put "
            "0.52-0.95 ms inside the gateway). Keys are now read in one query before the run "
            "and answers are committed by the cache's writer thread.",
        ]
    lines += tail
    arms = list(data["profiles"])
    labels = [label for label, _s, _n in PROFILE_POINTS]
    lines.append("| function | " + " | ".join(arms) + " |")
    lines.append("|---|" + "---|" * len(arms))
    for label in labels:
        cells = [data["profiles"][arm]["ms_per_call"].get(label) for arm in arms]
        if any(cells):
            shown = " | ".join("" if c is None else f"{c:.2f}" for c in cells)
            lines.append(f"| `{label.strip()}` | {shown} |")
    lines.append("| workbench code, self time | " + " | ".join(
        f"{data['profiles'][arm]['workbench_self_ms_per_call']:.2f}" for arm in arms) + " |")
    return lines


def section_mlflow(data: dict[str, Any]) -> list[str]:
    runs = data["runs"]
    wb = median([r["rows_per_s"] for r in runs["workbench"]])
    ml = median([r["rows_per_s"] for r in runs["mlflow.genai.evaluate"]])
    lines = [
        f"### 4. {data['rows']} examples: workbench vs `mlflow.genai.evaluate`",
        "",
        f"Same server ({LATENCY * 1000:.0f} ms), same prompt, an exact-match scorer in both. "
        f"MLflow: `predict_fn` calling `litellm.completion`, an `@scorer` function, "
        f"`MLFLOW_GENAI_EVAL_MAX_WORKERS={data['workers']}`, "
        "`MLFLOW_GENAI_EVAL_PREDICT_RATE_LIMIT=0` (no throttle), the SQLite store with "
        "`MLFLOW_SQLALCHEMYSTORE_POOLCLASS=NullPool` (the workbench's default: with MLflow's "
        "default SQLAlchemy pool, 5 connections + 10 overflow, ten or more evaluation workers "
        "on SQLite exhaust it, lose traces and slow the run down many times over). "
        f"Workbench: one prompt variant, concurrency {CONCURRENCY}, `run.trace: true` "
        "(an LLM span per row with its tokens, cost, latency and prompt version, in one trace "
        "linked to the run; MLflow writes a trace per row), MLflow logging included.",
        "",
        "| arm | wall s | rows/s | CPU ms/row | traces / LLM spans stored | score "
        "| phases (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, rs in runs.items():
        score = rs[0].get("score")
        lines.append(f"| {arm} | {median([r['wall'] for r in rs]):.2f} | "
                     f"{median([r['rows_per_s'] for r in rs]):.1f} | "
                     f"{median([r['cpu'] for r in rs]) / data['rows'] * 1e3:.1f} | "
                     f"{median([r['traces'] for r in rs]):.0f} / "
                     f"{median([r.get('spans', 0) for r in rs]):.0f} | "
                     f"{'' if score is None else f'{score:.3f}'} | {fmt_phases(rs) or '-'} |")
    untraced = median([r["wall"] - r["phases"].get("mlflow.spans", 0.0)
                       - r["phases"].get("mlflow.flush", 0.0) for r in runs["workbench"]])
    lines += [
        "",
        f"- Target (4, vs mlflow.genai.evaluate): workbench >= {TARGETS['mlflow']:.0f}x "
        f"faster: {wb / ml:.1f}x "
        f"{verdict(wb / ml >= TARGETS['mlflow'])}. Without its trace writes (wall minus the "
        f"span phase: {untraced:.2f} s) the workbench would be "
        f"{data['rows'] / untraced / ml:.1f}x.",
    ]
    return lines


def section_local(data: dict[str, Any], args: argparse.Namespace) -> list[str]:
    rows = data["rows"]
    rates = {}
    lines = [
        "### 5. Embedded model (local/smollm2): gateway vs its runtime directly",
        "",
        f"Temperature 0, max_tokens 64, calls alternating (A B, B A, ...) so prompt-cache reuse "
        f"favours neither; at most {args.local_calls} calls per arm within "
        f"{args.local_seconds:.0f} s.",
        "",
        "| arm | calls | tokens | seconds | tokens/s |",
        "|---|---|---|---|---|",
    ]
    for arm, arm_rows in rows.items():
        seconds, tokens = sum(r[0] for r in arm_rows), sum(r[1] for r in arm_rows)
        rates[arm] = tokens / seconds if seconds else float("nan")
        lines.append(f"| {arm} | {len(arm_rows)} | {tokens} | {seconds:.1f} | "
                     f"{rates[arm]:.1f} |")
    ratio = rates["Gateway.complete"] / rates["local_model.chat"]
    pairs = [(g[1] / g[0]) / (d[1] / d[0])
             for g, d in zip(rows["Gateway.complete"], rows["local_model.chat"], strict=False)
             if g[0] and d[0] and d[1]]
    lines += ["", f"- Target (5, embedded model): tokens/s through the gateway >= "
              f"{TARGETS['local']}x direct: {ratio:.2f} "
              f"(median of per-pair ratios {median(pairs):.2f}) "
              f"{verdict(ratio >= TARGETS['local'])}."]
    return lines


def print_summary(bench: Bench) -> None:
    """A plain-text table of the headline ratios (stdout)."""
    res, out = bench.results, []
    if "throughput" in res:
        runs, calls = res["throughput"]["runs"], res["throughput"]["calls"]
        plain = median([r["calls_per_s"] for r in runs["plain litellm, 1 process"]])
        for arm, rs in runs.items():
            rate = median([r["calls_per_s"] for r in rs])
            out.append((f"{arm} ({calls} calls)", f"{median([r['wall'] for r in rs]):.2f} s",
                        f"{rate:.0f} calls/s", f"{rate / plain:.2f}x plain"))
    if "cached" in res:
        runs = res["cached"]["runs"]
        out.append(("fully cached run", f"{median([r['wall'] for r in runs]):.2f} s",
                    f"{max(r['requests'] for r in runs)} requests", ""))
    if "overhead" in res:
        cpu = res["overhead"]["cpu"]
        base = median(cpu["litellm.acompletion"])
        for arm, values in cpu.items():
            out.append((f"{arm} (0 ms server)", f"{median(values):.2f} ms CPU/call",
                        f"{median(values) - base:+.2f} ms", ""))
    if "mlflow" in res:
        runs = res["mlflow"]["runs"]
        ml = median([r["rows_per_s"] for r in runs["mlflow.genai.evaluate"]])
        for arm, rs in runs.items():
            rate = median([r["rows_per_s"] for r in rs])
            out.append((f"{arm} ({res['mlflow']['rows']} rows)",
                        f"{median([r['wall'] for r in rs]):.2f} s", f"{rate:.1f} rows/s",
                        f"{rate / ml:.1f}x mlflow"))
    if "local" in res:
        rates = {}
        for arm, rows in res["local"]["rows"].items():
            rates[arm] = sum(r[1] for r in rows) / max(1e-9, sum(r[0] for r in rows))
        for arm, rate in rates.items():
            out.append((f"embedded model via {arm}", f"{rate:.1f} tokens/s",
                        f"{rate / rates['local_model.chat']:.2f}x direct", ""))
    widths = [max(len(row[i]) for row in out) for i in range(4)] if out else []
    for row in out:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def markdown_subsections(bench: Bench) -> dict[str, list[str]]:
    res, subsections = bench.results, {}
    if "throughput" in res:
        subsections.update(section_throughput(res["throughput"], bench.args.rounds))
    if "cached" in res:
        subsections["2"] = section_cached(res["cached"])
    if "overhead" in res:
        subsections["3"] = section_overhead(res["overhead"])
    if "mlflow" in res:
        subsections["4"] = section_mlflow(res["mlflow"])
    if "local" in res:
        subsections["5"] = section_local(res["local"], bench.args)
    return subsections


def write_results(bench: Bench, elapsed: float) -> None:
    """Replace this script's subsections inside the "Gateway and runner" section only."""
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else \
        "# Benchmark results\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        before, old, after = lines, [], []
        if before and before[-1].strip():
            before.append("")
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        before, old, after = lines[:start], lines[start + 1:end], lines[end:]
    kept: dict[str, list[str]] = {}
    current: str | None = None
    for line in old:
        if line.startswith("### "):
            current = line[4:].split(".", 1)[0].strip()
            kept[current] = []
        if current is not None:
            kept[current].append(line)
    for key in kept:
        while kept[key] and not kept[key][-1].strip():
            kept[key].pop()
    kept.update(markdown_subsections(bench))
    summary = [line for key in sorted(kept) for line in kept[key]
               if line.startswith("- Target") or line.startswith("- Reference")]
    header = [
        SECTION,
        "",
        f"`.venv/bin/python benchmarks/runner_throughput.py` (last run "
        f"{time.strftime('%Y-%m-%d')}, items {','.join(sorted(markdown_subsections(bench)))},"
        f" {bench.args.rounds} interleaved rounds, medians, {elapsed / 60:.1f} min; any other "
        "item below keeps the figures of its own last run). "
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{library_versions()}. The machine was **shared with other work** during the run "
        f"(1-minute load average {bench.load[0]:.1f} at the start, {bench.load[1]:.1f} at the "
        f"end, on {os.cpu_count()} cores), so absolute numbers are noisy and lower than on an "
        "idle machine; the ratios compare arms run side by side. All traffic on 127.0.0.1; "
        "the model server (tests/llm_server.py) runs in its own process.",
        "",
        "Targets:",
        "",
        *summary,
        "",
    ]
    body = [line for key in sorted(kept) for line in [*kept[key], ""]]
    new = [*before, *header, *body, *after]
    RESULTS_MD.write_text("\n".join(new).rstrip() + "\n", encoding="utf-8")
    log(f"updated {RESULTS_MD}")


def library_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("litellm", "mlflow", "xllamacpp"):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{name} {version(name)}")
    return ", ".join(parts)


# ---- main ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def temporary_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="workbench-bench-"))
    previous = {key: os.environ.get(key) for key in ("WORKBENCH_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["WORKBENCH_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        yield home
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(home, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="1,2,3,4,5,6",
                        help="comma-separated items to run (default: all)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per arm")
    parser.add_argument("--write", action="store_true",
                        help="update the 'Gateway and runner' section of benchmarks/RESULTS.md")
    parser.add_argument("--examples", type=int, default=500,
                        help="examples per prompt variant in items 1, 2, 6 (4 variants)")
    parser.add_argument("--eval-rows", type=int, default=500, help="rows in item 4")
    parser.add_argument("--mlflow-workers", type=int, default=8,
                        help="MLFLOW_GENAI_EVAL_MAX_WORKERS in item 4")
    parser.add_argument("--overhead-calls", type=int, default=250,
                        help="calls per arm and round in item 3")
    parser.add_argument("--local-calls", type=int, default=20, help="calls per arm in item 5")
    parser.add_argument("--local-seconds", type=float, default=90.0,
                        help="time bound of item 5 (stops starting new pairs after it)")
    parser.add_argument("--json", type=Path, help="also save the raw measurements here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("worker_args", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker == "plain":
        return worker_plain(*args.worker_args)
    if args.worker == "overhead":
        base, calls, rounds, home = args.worker_args
        return worker_overhead(base, int(calls), int(rounds), home)
    if args.worker == "local":
        return worker_local(int(args.worker_args[0]), float(args.worker_args[1]))
    items = {item.strip() for item in args.only.split(",") if item.strip()}
    unknown = items - set("123456")
    if unknown:
        raise SystemExit(f"--only: unknown items {sorted(unknown)}; use 1-6")
    started = time.perf_counter()
    with temporary_home() as home:
        import workbench  # noqa: F401  (offline defaults before mlflow/litellm import)

        bench = Bench(args, home)
        with LoopbackServer(LATENCY) as server:
            bench.server = server
            if items & {"1", "2", "4", "6"}:
                bench.warm_up(workers=2 if "6" in items else 1)
            if items & {"1", "6"}:
                bench.throughput(single="1" in items, multi="6" in items)
            if "2" in items:
                bench.cached()
            if "3" in items:
                bench.overhead()
            if "4" in items:
                bench.versus_mlflow()
        if "5" in items:
            bench.local()
        if bench.phases is not None:
            bench.phases.remove()
        elapsed = time.perf_counter() - started
        bench.load = (bench.load[0], os.getloadavg()[0])
        print()
        print_summary(bench)
        print(f"\n{elapsed:.0f} s in all")
        if args.json:
            args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()
                                                      if k != "json"},
                                             "load": bench.load, "seconds": elapsed,
                                             "results": bench.results}, indent=1))
        if args.write:
            write_results(bench, elapsed)
        else:
            print()
            print("\n".join(line for lines in markdown_subsections(bench).values()
                            for line in [*lines, ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
