"""Team mode: the same ledger, queries and alert de-duplication on PostgreSQL.

Uses the PostgreSQL cluster of the team-setup tests (skipped, with the reason, when the
server binaries or the driver are missing).
"""

from __future__ import annotations

from workbench.observe import queries
from workbench.observe.alerting import deliver
from workbench.observe.anomalies import Alert
from workbench.observe.ledger import Ledger
from workbench.observe.record import UsageRecord

from .test_team_setup import postgres  # noqa: F401  (the module's PostgreSQL fixture)


def test_the_ledger_writes_and_reads_on_postgresql(postgres):  # noqa: F811
    ledger = Ledger(postgres.url, interval_s=0.02)
    try:
        for i in range(300):
            ledger.record(UsageRecord(application=("a", "b")[i % 2], user="user", cost=0.01,
                                      tokens_in=100, priced=i % 3 != 0,
                                      steps={"call": 0.1 * (i % 10 + 1), "total": 1.5}))
        assert ledger.flush(timeout=30)
        store = ledger.store()
        usage = queries.usage(store, since="1h", by=["application", "user"])
        assert sorted(usage["calls"]) == [150, 150]
        assert usage["tokens_in"].sum() == 30_000 and usage["unpriced_calls"].sum() == 100
        latency = queries.latency(store, since="1h").set_index("step")
        assert latency.loc["call", "calls"] == 300 and latency.loc["total", "p99"] == 1.5
        calls = queries.calls_frame(store, since="1h")
        assert len(calls) == 300 and calls["priced"].dtype == bool
        alert = Alert(kind="unpriced", key="model=x", start=0.0, end=3600.0, expected=0.0,
                      observed=3.0, unit="calls/h")
        assert deliver([alert], store).new == 1
        assert deliver([alert], store).already_delivered == 1
    finally:
        ledger.close()


def test_the_rollups_are_made_and_read_on_postgresql(postgres, monkeypatch):  # noqa: F811
    import time

    from workbench.observe.store import Store

    store = Store(postgres.url)
    try:
        now = time.time()
        store.write([UsageRecord(application="rolled", request_type=None, cost=0.01, tokens_in=10,
                                 steps={"call": 0.1 * (i % 10 + 1)}, ttft_s=0.05,
                                 ts=now - 3 * 86400 + i * 60) for i in range(300)])
        usage = queries.usage(store, since="7d", by=["application", "request_type"])
        row = usage[usage["application"] == "rolled"].iloc[0]
        assert row["calls"] == 300 and row["request_type"] is None
        monkeypatch.setattr(queries, "EXACT_LIMIT", 0)
        latency = queries.latency(store, since="7d", by=["application", "step"])
        latency = latency[latency["application"] == "rolled"].set_index("step")
        assert latency.loc["call", "calls"] == 300 and latency.loc["ttft", "calls"] == 300
        assert abs(latency.loc["call", "p50"] - 0.55) < 0.06
    finally:
        store.dispose()
