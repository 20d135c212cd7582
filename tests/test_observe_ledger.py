"""The usage ledger: records are written off the request path, read back as DataFrames,
and never vanish without a count - not when the queue is full, not when the store is down."""

from __future__ import annotations

import logging
import time

import pytest

from workbench.errors import WorkbenchError
from workbench.observe import queries
from workbench.observe.ledger import Ledger, LedgerError, LedgerHealth
from workbench.observe.record import UsageRecord, seconds, since_ts


@pytest.fixture
def ledger(tmp_path):
    opened = Ledger(f"sqlite:///{tmp_path / 'usage.sqlite'}", interval_s=0.02)
    yield opened
    opened.close()


def call(app="helpdesk", user="u1", kind="triage", tokens_in=100, tokens_out=10, cost=0.001,
         **fields):
    return UsageRecord(application=app, user=user, request_type=kind, model="openai/gpt-x",
                       provider="openai", tokens_in=tokens_in, tokens_out=tokens_out, cost=cost,
                       **fields)


def test_usage_sums_tokens_cost_and_calls_per_group(ledger):
    for _ in range(3):
        ledger.record(call(app="helpdesk"))
    ledger.record(call(app="search", tokens_in=50, cost=0.5))
    ledger.record(call(app="search", cost=0.0, priced=False))
    ledger.record(call(app="search", status="error", error_type="Timeout", tokens_in=0,
                       tokens_out=0, cost=0.0))
    assert ledger.flush()
    frame = queries.usage(ledger.store(), since="1h", by="application")
    assert list(frame["application"]) == ["search", "helpdesk"]  # most expensive first
    search = frame.iloc[0]
    assert (search.calls, search.tokens_in, search.unpriced_calls, search.errors) == (
        3, 150, 1, 1)
    assert search.cost == pytest.approx(0.5)
    helpdesk = frame.iloc[1]
    assert (helpdesk.calls, helpdesk.tokens_in, helpdesk.tokens_out) == (3, 300, 30)


def test_usage_leaves_out_calls_before_the_window(ledger):
    ledger.record(call(ts=time.time() - 3 * 86400))
    ledger.record(call())
    ledger.flush()
    assert queries.usage(ledger.store(), since="1d")["calls"].sum() == 1
    assert queries.usage(ledger.store(), since="7d")["calls"].sum() == 2


def test_latency_gives_percentiles_per_step_and_time_to_first_token(ledger):
    for i in range(1, 101):
        ledger.record(call(steps={"render": 0.001, "call": i / 100, "total": i / 100 + 0.01},
                           ttft_s=0.2))
    ledger.flush()
    frame = queries.latency(ledger.store(), since="1h", by="step").set_index("step")
    assert frame.loc["call", "calls"] == 100
    assert frame.loc["call", "p50"] == pytest.approx(0.505)
    assert frame.loc["call", "p99"] == pytest.approx(0.9901)
    assert frame.loc["render", "p95"] == pytest.approx(0.001)
    assert frame.loc["ttft", "p50"] == pytest.approx(0.2)


def test_latency_by_application_and_step(ledger):
    ledger.record(call(app="a", steps={"call": 1.0}))
    ledger.record(call(app="b", steps={"call": 3.0}))
    ledger.flush()
    frame = queries.latency(ledger.store(), since="1h", by=["application", "step"])
    assert dict(zip(frame["application"], frame["p50"], strict=True)) == {"a": 1.0, "b": 3.0}


def test_an_unknown_column_is_refused_with_the_choices(ledger):
    with pytest.raises(WorkbenchError, match="by=\\['team'\\] is not a ledger column"):
        queries.usage(ledger.store(), by=["team"])


@pytest.mark.parametrize(("span", "expected"), [("30m", 1800), ("24h", 86400),
                                                ("7d", 604800), ("2w", 1209600), (90, 90)])
def test_time_spans(span, expected):
    assert seconds(span) == expected


def test_a_bad_time_span_says_how_to_write_one():
    with pytest.raises(WorkbenchError, match="e.g. '30m', '24h', '7d'"):
        since_ts("last week")


def blocked_store(tmp_path):
    """A SQLite path whose folder cannot be made (a file is in the way): the store is down."""
    (tmp_path / "down").write_text("a file where the folder should be")
    return f"sqlite:///{tmp_path / 'down' / 'usage.sqlite'}"


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_store_that_is_down_keeps_records_waiting_then_writes_them(tmp_path, caplog):
    ledger = Ledger(blocked_store(tmp_path), interval_s=0.02, retry_s=(0.05, 0.1))
    with caplog.at_level(logging.WARNING, logger="workbench.observe"):
        for _ in range(20):
            ledger.record(call())
        wait_for(lambda: ledger.health().store_error is not None)
    assert "wait in memory and are retried" in caplog.text
    assert ledger.health().waiting == 20 and ledger.health().written == 0
    with pytest.raises(LedgerError, match="20 record\\(s\\) wait in memory"):
        ledger.store()
    (tmp_path / "down").unlink()  # the store comes back
    assert ledger.flush(timeout=10)
    assert ledger.health() == LedgerHealth(url=ledger.url, recorded=20, written=20, waiting=0,
                                           lost=0, store_error=None)
    assert queries.usage(ledger.store(), since="1h")["calls"].sum() == 20
    ledger.close()


def test_a_full_queue_counts_and_warns_and_the_count_reaches_the_store(tmp_path, caplog):
    ledger = Ledger(blocked_store(tmp_path), queue_size=5, interval_s=0.02,
                    retry_s=(0.5, 0.5))  # the writer waits 0.5 s between tries
    ledger.record(call())
    wait_for(lambda: ledger.health().store_error is not None)  # the writer now backs off
    with caplog.at_level(logging.WARNING, logger="workbench.observe"):
        for _ in range(200):
            ledger.record(call())
    health = ledger.health()
    assert health.lost > 0 and health.recorded == 201
    assert health.written + health.waiting + health.lost == 201
    assert "the ledger queue was full" in caplog.text
    assert "1 record(s) lost so far" in caplog.text  # the count as of the first warning
    (tmp_path / "down").unlink()
    assert ledger.flush(timeout=10)
    store = ledger.store()
    assert queries.usage(store, since="1h")["calls"].sum() == 201 - health.lost
    assert queries.lost(store, since="1h") == health.lost
    ledger.close()


def test_closing_with_the_store_down_reports_the_records_lost(tmp_path, caplog):
    ledger = Ledger(blocked_store(tmp_path), interval_s=0.02, retry_s=(0.05, 0.1))
    for _ in range(7):
        ledger.record(call())
    wait_for(lambda: ledger.health().store_error is not None)
    with caplog.at_level(logging.ERROR, logger="workbench.observe"):
        ledger.close(timeout=0.2)
    assert "7 record(s) could not be written" in caplog.text


def test_an_empty_window_gives_empty_frames_with_the_columns(ledger):
    assert list(queries.latency(ledger.store(), by="step").columns) == [
        "step", "calls", "p50", "p95", "p99"]
    assert queries.usage(ledger.store(), by="user").empty
