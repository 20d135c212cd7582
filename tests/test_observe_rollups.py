"""The ledger's rollups: daily usage totals and hourly latency histograms give the same
report as the calls themselves (exactly for totals, within 1 % for percentiles), at the
edges of a window too, and a ledger written before them gets them on open."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import sqlalchemy as sa

from workbench.observe import histogram, queries
from workbench.observe.record import UsageRecord
from workbench.observe.store import Store

DAY = 86400.0


def spread_records(count=3000, days=10, seed=3):
    """Calls over ``days`` days back from now, with varied names, flags and step times."""
    rng = np.random.default_rng(seed)
    now = time.time()
    out = []
    for i in range(count):
        out.append(UsageRecord(
            application=("helpdesk", "search", None)[i % 3], user=f"u{i % 7}",
            request_type=("triage", "chat")[i % 2], model="openai/gpt-x",
            prompt_version=None if i % 5 == 0 else 2, tokens_in=int(rng.integers(10, 900)),
            tokens_out=int(rng.integers(1, 90)), tokens_cached=None if i % 4 else 8,
            cost=float(rng.random() / 1000), priced=i % 11 != 0, cache_hit=i % 13 == 0,
            status="error" if i % 17 == 0 else "ok",
            steps={"call": float(rng.lognormal(-1.0, 0.6)), "render": 0.001},
            ttft_s=float(rng.lognormal(-2.0, 0.3)) if i % 2 else None,
            ts=now - float(rng.random()) * days * DAY))
    return out


@pytest.fixture
def store(tmp_path):
    opened = Store(f"sqlite:///{tmp_path / 'usage.sqlite'}")
    yield opened
    opened.dispose()


def exact_usage(records, start, until=None):
    chosen = [r for r in records if r.ts >= start and (until is None or r.ts < until)]
    return {"calls": len(chosen), "tokens_in": sum(r.tokens_in for r in chosen),
            "tokens_cached": sum(r.tokens_cached or 0 for r in chosen),
            "cost": sum(r.cost for r in chosen),
            "unpriced_calls": sum(not r.priced for r in chosen),
            "cache_hits": sum(r.cache_hit for r in chosen),
            "errors": sum(r.status == "error" for r in chosen)}


@pytest.mark.parametrize(("since_days", "until_days"), [(3.5, None), (9.9, 1.3), (0.2, None),
                                                       (1.2, 0.7)])
def test_usage_totals_match_the_calls_at_the_edges_of_a_window(store, since_days, until_days):
    records = spread_records()
    store.write(records)
    now = time.time()
    until = None if until_days is None else now - until_days * DAY
    frame = queries.usage(store, since_days * DAY, until=until)
    expected = exact_usage(records, now - since_days * DAY, until)
    got = frame.iloc[0]
    assert {k: got[k] for k in expected if k != "cost"} == {
        k: v for k, v in expected.items() if k != "cost"}
    assert got["cost"] == pytest.approx(expected["cost"])


def test_usage_groups_keep_missing_names_and_flags(store):
    records = spread_records()
    store.write(records)
    frame = queries.usage(store, "30d", by=["application", "prompt_version", "cache_hit"])
    apps = set(frame["application"])
    assert apps == {"helpdesk", "search", None}
    assert set(frame["prompt_version"]) == {2, None}
    assert frame["cache_hit"].dtype == bool
    missing = frame[frame["application"].isna()]
    assert missing["calls"].sum() == sum(r.application is None for r in records)


def test_a_large_window_reads_percentiles_from_the_histogram_within_one_percent(
        store, monkeypatch):
    records = spread_records(count=4000)
    store.write(records)
    exact = queries.latency(store, "30d", by="step").set_index("step")
    monkeypatch.setattr(queries, "EXACT_LIMIT", 0)
    read = {"n": 0}
    original = queries.steps_frame

    def counting(*args, **kwargs):
        frame = original(*args, **kwargs)
        read["n"] += len(frame)
        return frame

    monkeypatch.setattr(queries, "steps_frame", counting)
    approx = queries.latency(store, "30d", by="step").set_index("step")
    assert read["n"] < len(records) / 10  # only the first partial hour's rows were read
    assert list(approx.index) == list(exact.index) == ["call", "render", "ttft"]
    assert (approx["calls"] == exact["calls"]).all()
    for step in ("call", "ttft"):
        values = np.array([r.steps["call"] if step == "call" else r.ttft_s for r in records
                           if (r.steps["call"] if step == "call" else r.ttft_s) is not None])
        for q, column in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            assert approx.loc[step, column] == pytest.approx(np.quantile(values, q), rel=0.02)


def test_histogram_percentiles_by_application(store, monkeypatch):
    store.write(spread_records())
    exact = queries.latency(store, "30d", by=["application", "step"])
    monkeypatch.setattr(queries, "EXACT_LIMIT", 0)
    approx = queries.latency(store, "30d", by=["application", "step"])
    assert len(approx) == len(exact) == 9  # two names and the missing one, three steps each
    merged = exact.merge(approx, on=["application", "step"], suffixes=("", "_h"))
    assert len(merged) == 9 and (merged["calls"] == merged["calls_h"]).all()
    assert np.allclose(merged["p50"], merged["p50_h"], rtol=0.02)


def test_bucket_values_are_within_one_percent():
    for seconds in (1e-5, 0.0012, 0.4, 3.7, 120.0):
        assert histogram.value(histogram.bucket(seconds)) == pytest.approx(seconds, rel=0.01)
    assert histogram.value(histogram.bucket(0.0)) == 0.0
    assert list(histogram.buckets([0.4, 0.0])) == [histogram.bucket(0.4), histogram.ZERO_BUCKET]
    assert math.isclose(histogram.hour_of(7300.0), 7200.0)


def rolled(store, name):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(store.rolled).where(
            store.rolled.c.rollup == name)).scalar_one()


def test_a_report_rolls_up_the_days_it_reads_once(store):
    records = spread_records(count=600)
    store.write(records)
    assert rolled(store, "usage_daily") == 0  # writing adds nothing to the rollups
    first = queries.usage(store, "30d")
    days = rolled(store, "usage_daily")
    assert days >= 9
    again = queries.usage(store, "30d")
    assert rolled(store, "usage_daily") == days
    assert first.loc[0, "calls"] == again.loc[0, "calls"] == 600
    with store.engine.connect() as conn:
        summed = conn.execute(sa.select(sa.func.sum(store.usage_daily.c.calls))).scalar_one()
    assert 0 < summed < 600  # the recent, unsettled part came from the calls


def test_a_call_written_late_makes_its_day_and_hour_rolled_up_again(store, monkeypatch):
    records = spread_records(count=600)
    store.write(records)
    monkeypatch.setattr(queries, "EXACT_LIMIT", 0)
    queries.usage(store, "30d")
    before = queries.latency(store, "30d").set_index("step")
    late = UsageRecord(application="helpdesk", model="openai/gpt-x", tokens_in=5, cost=1.0,
                       steps={"call": 0.5}, ts=time.time() - 5 * DAY)
    store.write([late])  # e.g. it waited while the store was down
    after = queries.usage(store, "30d")
    assert after.loc[0, "calls"] == 601
    assert after.loc[0, "cost"] == pytest.approx(sum(r.cost for r in records) + 1.0)
    latency = queries.latency(store, "30d").set_index("step")
    assert latency.loc["call", "calls"] == before.loc["call", "calls"] + 1


def test_an_all_time_window_rolls_up_only_the_periods_since_the_first_call(store):
    store.write(spread_records(count=200, days=3))
    assert queries.usage(store, None).loc[0, "calls"] == 200
    assert queries.latency(store, None).set_index("step").loc["call", "calls"] == 200
    assert rolled(store, "usage_daily") <= 4 and rolled(store, "step_hist") <= 4 * 24
