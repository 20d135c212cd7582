"""A month of traffic with known incidents, to measure what the anomaly detectors find.

Several applications, each with its own request types, users and model, with a daily
cycle (busy afternoons, quiet nights) and a weekly one (quiet weekends). Five incidents
are injected; each lists the alert keys it changes, so an alert is a true positive when
its key is one of them and its window overlaps the incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .record import provider_of

HOUR = 3600
# application: (peak requests/h, model, {request type: (tokens in, tokens out)}, retrieves)
APPS: dict[str, tuple[float, str, dict[str, tuple[float, float]], bool]] = {
    "helpdesk": (100, "openai/gpt-4o", {"triage": (600, 20), "reply": (1200, 250)}, False),
    "search": (80, "openai/gpt-4o", {"answer": (2000, 150)}, True),
    "agent": (30, "anthropic/claude-sonnet", {"plan": (3000, 400), "act": (1500, 100)},
              False),
    "summaries": (40, "openai/gpt-4o-mini", {"summarize": (4000, 300)}, False),
}
PRICES = {"openai/gpt-4o": (2.5e-6, 10e-6), "openai/gpt-4o-mini": (0.15e-6, 0.6e-6),
          "anthropic/claude-sonnet": (3e-6, 15e-6), "anthropic/claude-haiku": (0.8e-6, 4e-6)}
USERS_PER_APP = 10


@dataclass(frozen=True)
class Incident:
    """What was injected, when, and the alert keys (``column=value``) it changes."""

    name: str
    start: float
    end: float
    keys: frozenset[str]


@dataclass(frozen=True)
class Simulation:
    calls: Any  # ledger columns, one row per call
    steps: Any  # ts, application, step, seconds
    incidents: list[Incident]
    start: float
    end: float


def simulate(days: int = 28, seed: int = 7, start: datetime | None = None) -> Simulation:
    """``days`` of traffic from ``start`` (a Monday, midnight UTC) with the five incidents."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    t0 = (start or datetime(2026, 1, 5, tzinfo=UTC)).timestamp()
    frames = [_traffic(rng, app, t0, days) for app in APPS]
    calls = pd.concat(frames, ignore_index=True)
    incidents = _incidents(t0)
    calls = _inject(calls, rng, incidents)
    calls = calls.sort_values("ts", kind="stable").reset_index(drop=True)
    calls = _price_and_time(calls, rng)
    steps = _steps(calls)
    return Simulation(calls=calls.drop(columns=[c for c in calls if c.startswith("_")]),
                      steps=steps, incidents=incidents, start=t0, end=t0 + days * 86400)


def _traffic(rng: Any, app: str, t0: float, days: int) -> Any:
    import numpy as np
    import pandas as pd

    peak, model, kinds, _ = APPS[app]
    hours = np.arange(days * 24)
    hour_of_day, day = hours % 24, hours // 24
    daily = 0.25 + 0.75 * np.exp(-(((hour_of_day - 14) / 4.0) ** 2))
    weekly = np.where(day % 7 >= 5, 0.4, 1.0)
    counts = rng.poisson(peak * daily * weekly)
    n = int(counts.sum())
    ts = t0 + (np.repeat(hours, counts) + rng.random(n)) * HOUR
    index = list(APPS).index(app)
    weights = 1.0 / np.arange(1, USERS_PER_APP + 1)  # a few users make most requests
    users = rng.choice(USERS_PER_APP, size=n, p=weights / weights.sum())
    kind_names = list(kinds)
    kind_index = rng.integers(0, len(kind_names), n)
    kind = np.array(kind_names)[kind_index]
    tokens = np.array([kinds[k] for k in kind_names])[kind_index]
    return pd.DataFrame({
        "ts": ts, "application": app, "request_type": kind,
        "user": [f"u-{index * USERS_PER_APP + u:02d}" for u in users],
        "prompt": app + "-" + pd.Series(kind), "prompt_version": 3, "prompt_alias": "production",
        "model": model, "requested_model": model,
        "_in": tokens[:, 0] * rng.lognormal(0, 0.25, n),
        "_out": tokens[:, 1] * rng.lognormal(0, 0.25, n),
        "status": np.where(rng.random(n) < 0.005, "error", "ok"),
        "fallback": rng.random(n) < 0.002, "_retrieve_x": 1.0,
    })


def _users(app: str) -> set[str]:
    index = list(APPS).index(app)
    return {f"user=u-{index * USERS_PER_APP + u:02d}" for u in range(USERS_PER_APP)}


def _incidents(t0: float) -> list[Incident]:
    def at(day: int, hour: int) -> float:
        return t0 + (day * 24 + hour) * HOUR

    openai_apps = [a for a, spec in APPS.items() if provider_of(spec[1]) == "openai"]
    outage_keys = {"provider=openai"} | {f"application={a}" for a in openai_apps} | {
        f"request_type={k}" for a in openai_apps for k in APPS[a][2]} | set().union(
        *(_users(a) for a in openai_apps))
    return [
        Incident("prompt version 4 triples input tokens", at(9, 9), at(10, 18),
                 frozenset({"application=search", "request_type=answer",
                            "group=search/answer"} | _users("search"))),
        Incident("runaway user", at(15, 1), at(15, 7),
                 frozenset({"user=u-27", "application=agent", "request_type=plan"})),
        Incident("retrieval latency regression", at(18, 8), at(19, 8),
                 frozenset({"step=search/retrieve", "step=search/total"})),
        Incident("unpriced model", at(21, 10), at(23, 10),
                 frozenset({"model=acme/sum-1"})),
        Incident("provider outage with fallbacks", at(24, 13), at(24, 16),
                 frozenset(outage_keys)),
    ]


def _inject(calls: Any, rng: Any, incidents: list[Incident]) -> Any:
    import pandas as pd

    prompt, runaway, latency, unpriced, outage = incidents
    inside = (calls["ts"] >= prompt.start) & (calls["ts"] < prompt.end)
    hit = inside & (calls["application"] == "search")
    calls.loc[hit, "_in"] *= 3
    calls.loc[hit, "prompt_version"] = 4
    extra_n = 50 * 6  # 50 extra plan requests an hour for six hours
    extra = calls[calls["request_type"] == "plan"].sample(extra_n, random_state=1).copy()
    extra["ts"] = runaway.start + rng.random(extra_n) * (runaway.end - runaway.start)
    extra["user"] = "u-27"
    calls = pd.concat([calls, extra], ignore_index=True)
    slow = (calls["ts"] >= latency.start) & (calls["ts"] < latency.end)
    calls.loc[slow & (calls["application"] == "search"), "_retrieve_x"] = 4.0
    moved = ((calls["ts"] >= unpriced.start) & (calls["ts"] < unpriced.end)
             & (calls["application"] == "summaries"))
    calls.loc[moved, ["model", "requested_model"]] = "acme/sum-1"
    down = ((calls["ts"] >= outage.start) & (calls["ts"] < outage.end)
            & calls["requested_model"].str.startswith("openai/"))
    failed = down & (rng.random(len(calls)) < 0.15)
    calls.loc[down & ~failed, ["model", "fallback"]] = ["anthropic/claude-haiku", True]
    calls.loc[failed, "status"] = "error"
    calls["_retrieve_x"] = calls["_retrieve_x"].astype(float)
    return calls.assign(fallback=calls["fallback"].astype(bool))


def _price_and_time(calls: Any, rng: Any) -> Any:
    import numpy as np

    n = len(calls)
    ok = calls["status"] == "ok"
    tokens_in = np.where(ok, calls["_in"].round(), 0).astype(int)
    tokens_out = np.where(ok, calls["_out"].round(), 0).astype(int)
    price_in = calls["model"].map(lambda m: PRICES.get(m, (0.0, 0.0))[0]).to_numpy()
    price_out = calls["model"].map(lambda m: PRICES.get(m, (0.0, 0.0))[1]).to_numpy()
    retrieve = np.where(calls["application"] == "search",
                        0.12 * rng.lognormal(0, 0.3, n) * calls["_retrieve_x"], np.nan)
    call = (0.3 + tokens_out * 0.01) * rng.lognormal(0, 0.3, n)
    return calls.assign(
        tokens_in=tokens_in, tokens_out=tokens_out, tokens_cached=None,
        cost=tokens_in * price_in + tokens_out * price_out,
        priced=calls["model"].isin(list(PRICES)).to_numpy(),
        provider=calls["model"].map(provider_of), cache_hit=False, ttft_s=np.nan,
        error_type=np.where(ok, None, "InternalServerError"),
        request_id=[f"r{i:07d}" for i in range(n)], call_id=[f"c{i:07d}" for i in range(n)],
        _render=0.002 * rng.lognormal(0, 0.2, n), _retrieve=retrieve, _call=call)


def _steps(calls: Any) -> Any:
    import pandas as pd

    parts = []
    total = calls["_render"] + calls["_retrieve"].fillna(0) + calls["_call"]
    for step, values in (("render", calls["_render"]), ("retrieve", calls["_retrieve"]),
                         ("call", calls["_call"]), ("total", total)):
        part = pd.DataFrame({"ts": calls["ts"], "application": calls["application"],
                             "step": step, "seconds": values})
        parts.append(part.dropna(subset=["seconds"]))
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class Score:
    """How the alerts of a simulation compare with its incidents."""

    alerts: int
    true_alerts: int
    incidents_found: int
    incidents: int
    false_per_week: float

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 1.0

    @property
    def recall(self) -> float:
        return self.incidents_found / self.incidents if self.incidents else 1.0


def score(alerts: list[Any], sim: Simulation, grace_s: float = 2 * HOUR) -> Score:
    """An alert is true when its key is one its incident changes and the windows overlap
    (the alert may end up to ``grace_s`` after the incident). Episodes of one kind and key
    within one incident count as one alert, so fragments do not inflate the precision."""

    def matches(alert: Any, incident: Incident) -> bool:
        return (alert.key in incident.keys and alert.start < incident.end + grace_s
                and alert.end > incident.start)

    true = {(a.kind, a.key, i.name) for a in alerts for i in sim.incidents if matches(a, i)}
    false = [a for a in alerts if not any(matches(a, i) for i in sim.incidents)]
    found = [i for i in sim.incidents if any(matches(a, i) for a in alerts)]
    weeks = (sim.end - sim.start) / (7 * 86400)
    return Score(alerts=len(true) + len(false), true_alerts=len(true),
                 incidents_found=len(found), incidents=len(sim.incidents),
                 false_per_week=len(false) / weeks)
