"""Usage ledger overhead: the enqueue path of a served request, ingest rate, report time.

    .venv/bin/python benchmarks/observe_ledger.py [--calls 50000] [--ingest 200000]
                                                  [--report 1000000]

1. Enqueue: what ``PromptService`` adds per request to record its usage (building the
   record, pricing lookup, putting it on the queue), timed one call at a time; p50 and p99.
   Target: p50 <= 0.2 ms.
2. Ingest: records per second from ``record()`` until the writer thread has committed them
   all to SQLite (each with four steps). Target: >= 20,000 records/s.
3. Report: ``usage(by=[application, user, request_type])`` and ``latency(by="step")`` over
   a ledger of ``--report`` records spread over 30 days, after its ended hours and days
   are rolled up (timed apart: the ledger's writer does it as they end). Target: <= 3 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.gateway.config import ModelConfig  # noqa: E402
from workbench.observe import hook, queries, rollup  # noqa: E402
from workbench.observe.ledger import Ledger  # noqa: E402
from workbench.observe.record import UsageRecord  # noqa: E402
from workbench.observe.store import Store  # noqa: E402

STEPS = {"prompt": 0.00001, "render": 0.00005, "call": 0.4, "total": 0.40006}


def enqueue(calls: int, folder: Path) -> None:
    ledger = Ledger(f"sqlite:///{folder / 'enqueue.sqlite'}", queue_size=calls + 1)
    hook._ledgers[hook._ledgers_key()] = ledger
    config = ModelConfig(model="openai/gpt-4o-mini")
    completion = SimpleNamespace(model="openai/gpt-4o-mini", prompt_tokens=420,
                                 completion_tokens=12, cost=0.0000702, fallback=False)
    tags = {"application": "helpdesk", "user": "u-17", "request_type": "triage"}
    hook.served(prompt="support-triage", version=3, alias="production", tags=tags,
                config=config, completion=completion, steps=dict(STEPS))  # warm-up
    timings = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        hook.served(prompt="support-triage", version=3, alias="production", tags=tags,
                    config=config, completion=completion, steps=dict(STEPS))
        timings.append(time.perf_counter_ns() - started)
        if len(timings) % 100 == 0:
            time.sleep(0.005)  # a served request's pace: the writer runs in between
    ledger.close()
    timings.sort()
    p50, p99 = timings[len(timings) // 2] / 1e6, timings[int(len(timings) * 0.99)] / 1e6
    health = ledger.health()
    print(f"enqueue: {calls} records, p50 {p50:.4f} ms, p99 {p99:.4f} ms, "
          f"mean {statistics.fmean(timings) / 1e6:.4f} ms; written {health.written}, "
          f"lost {health.lost}")


def records(count: int, span_s: float = 0.0) -> list[UsageRecord]:
    rng = random.Random(1)
    now = time.time()
    apps, kinds = ["helpdesk", "search", "summaries", "agent"], ["triage", "chat", "extract"]
    return [UsageRecord(application=rng.choice(apps), user=f"u-{rng.randrange(500)}",
                        request_type=rng.choice(kinds), prompt="support-triage",
                        prompt_version=3, prompt_alias="production", model="openai/gpt-4o-mini",
                        provider="openai", requested_model="openai/gpt-4o-mini",
                        tokens_in=rng.randrange(100, 900), tokens_out=rng.randrange(5, 200),
                        cost=rng.random() / 1000, steps=dict(STEPS),
                        ts=now - rng.random() * span_s)
            for _ in range(count)]


def ingest(count: int, folder: Path) -> None:
    batch = records(count)
    ledger = Ledger(f"sqlite:///{folder / 'ingest.sqlite'}", queue_size=count + 1)
    ledger.record(batch[0])
    ledger.flush()  # the store is created before the clock starts
    started = time.perf_counter()
    for item in batch[1:]:
        ledger.record(item)
    assert ledger.flush(timeout=600)
    elapsed = time.perf_counter() - started
    ledger.close()
    print(f"ingest: {count - 1} records (4 steps each) in {elapsed:.2f} s = "
          f"{(count - 1) / elapsed:,.0f} records/s; lost {ledger.health().lost}")


def report(count: int, folder: Path) -> None:
    store = Store(f"sqlite:///{folder / 'report.sqlite'}")
    started = time.perf_counter()
    for start in range(0, count, 50_000):
        store.write(records(min(50_000, count - start), span_s=30 * 86400))
    print(f"report: {count:,} records written in {time.perf_counter() - started:.1f} s")
    for name in rollup.PERIODS:  # what the writer does as periods end, all at once here
        started = time.perf_counter()
        rollup.ensure(store, name, time.time() - 31 * 86400, time.time())
        print(f"report: rolling up 30 days into {name} (once): "
              f"{time.perf_counter() - started:.2f} s")
    for name, query in [
        ("usage by application, user, request_type (30d)",
         lambda: queries.usage(store, "30d", by=["application", "user", "request_type"])),
        ("usage by application (7d)", lambda: queries.usage(store, "7d", by="application")),
        ("latency by step (30d)", lambda: queries.latency(store, "30d", by="step")),
        ("latency by step (24h)", lambda: queries.latency(store, "24h", by="step")),
    ]:
        started = time.perf_counter()
        frame = query()
        print(f"report: {name}: {time.perf_counter() - started:.2f} s ({len(frame)} rows)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--ingest", type=int, default=200_000)
    parser.add_argument("--report", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        enqueue(args.calls, Path(folder))
        ingest(args.ingest, Path(folder))
        if args.report:
            report(args.report, Path(folder))


if __name__ == "__main__":
    main()
