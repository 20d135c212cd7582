"""Cost and latency observability: the usage ledger and what is read from it.

```python
from workbench import observe
observe.usage(since="7d", by=["application", "user", "request_type"])
observe.latency(since="24h", by="step")
observe.alerts(since="24h")
observe.recommend(since="30d")
observe.ab_from_traffic("support-triage", "triage", "openai/gpt-4o-mini")  # a ready A/B
```

Every served request and every experiment call is one record in the project's ledger
(``.workbench/usage.sqlite``, or ``$WORKBENCH_LEDGER_URL`` for a team database).
"""

from __future__ import annotations

from typing import Any

from .anomalies import Thresholds
from .budgets import Budget, BudgetExceeded
from .hook import attribute, default_ledger, record
from .record import UsageRecord

__all__ = ["Budget", "BudgetExceeded", "Thresholds", "UsageRecord", "ab_from_traffic",
           "alerts", "attribute", "default_ledger", "latency", "recommend", "record", "usage"]


def usage(since: Any = "7d", by: str | list[str] | None = None) -> Any:
    """Calls, tokens (in/out/cached), cost, unpriced calls, cache hits, errors per group."""
    from . import queries

    return queries.usage(default_ledger().store(), since, by)


def latency(since: Any = "24h", by: str | list[str] | None = "step") -> Any:
    """p50/p95/p99 seconds per step (``render``, ``call``, ``total``, ``ttft``) or group."""
    from . import queries

    return queries.latency(default_ledger().store(), since, by)


def alerts(since: Any = "24h", *, history: Any = "28d", thresholds: Any = None,
           webhook: str | None = None) -> Any:
    """Every alert of the window as one DataFrame, newest first: the ledger's cost and
    latency anomalies ending within ``since``, and the alerts the monitor (``quality``,
    ``canary``) and RAG (``query_drift``) delivered within it; ``source`` says which.

    New anomalies are logged and, with ``webhook``, POSTed as JSON (``new``: not delivered
    before); each alert is delivered once, the others when they fired, by their source.
    """
    from . import alerting as checking

    store = default_ledger().store()
    found = checking.check(store, since, history, thresholds)
    before = checking._delivered(store, [a.alert_id for a in found])
    checking.deliver(found, store, webhook=webhook)
    every = checking.with_recorded(store, since, found)
    return checking.frame(every, {a.alert_id for a in found} - before)


def recommend(since: Any = "30d", *, min_savings_usd: float = 0.0) -> Any:
    """Savings advice (response cache, max_tokens caps, prompt caching, evidence-backed
    model downgrades, downgrade A/Bs to run) with projected monthly savings, as a
    DataFrame, largest first."""
    from . import savings

    found = savings.recommend(default_ledger().store(), since, min_savings_usd=min_savings_usd)
    return savings.frame(found)


def ab_from_traffic(prompt: str, request_type: str, cheaper_model: Any,
                    folder: Any = None, **options: Any) -> Any:
    """Write a ready A/B folder: the served version of ``prompt`` against ``cheaper_model``
    on the stored ``request_type`` requests (``observe.abtest``); its path."""
    from .abtest import ab_from_traffic as write

    return write(prompt, request_type, cheaper_model, folder, **options)
