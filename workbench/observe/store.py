"""The ledger's tables, on SQLite in the project by default or any SQLAlchemy URL.

SQLAlchemy Core keeps one code path for the local file and a team's PostgreSQL.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from typing import Any

from ..settings import project_root
from . import histogram, rollup
from .record import UsageRecord

URL_ENV = "WORKBENCH_LEDGER_URL"

CALL_COLUMNS = (
    "call_id", "request_id", "ts", "application", "user", "request_type", "prompt",
    "prompt_version", "prompt_alias", "model", "provider", "requested_model", "tokens_in",
    "tokens_out", "tokens_cached", "cost", "priced", "ttft_s", "cache_hit", "fallback",
    "status", "error_type", "route", "fingerprint",
)
ADDED_COLUMNS = ("route", "fingerprint")  # columns a ledger made before them lacks


def default_url() -> str:
    """``$WORKBENCH_LEDGER_URL`` (team mode), else ``<project>/.workbench/usage.sqlite``."""
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    return f"sqlite:///{project_root() / '.workbench' / 'usage.sqlite'}"


def tables() -> tuple[Any, ...]:
    """calls, steps, lost, alerts, then the rollups step_hist, usage_daily and rolled: built
    on first use so importing needs no SQLAlchemy."""
    import sqlalchemy as sa

    meta = sa.MetaData()
    text, num, flag = sa.String, sa.Float, sa.Boolean
    calls = sa.Table(
        "calls", meta,
        sa.Column("call_id", sa.String(32), primary_key=True),
        sa.Column("request_id", text(64)), sa.Column("ts", num, nullable=False, index=True),
        *(sa.Column(c, text(200)) for c in ("application", "user", "request_type", "prompt")),
        sa.Column("prompt_version", sa.Integer), sa.Column("prompt_alias", text(100)),
        *(sa.Column(c, text(200)) for c in ("model", "provider", "requested_model")),
        *(sa.Column(c, sa.Integer) for c in ("tokens_in", "tokens_out", "tokens_cached")),
        sa.Column("cost", num), sa.Column("priced", flag), sa.Column("ttft_s", num),
        sa.Column("cache_hit", flag), sa.Column("fallback", flag),
        sa.Column("status", text(20)), sa.Column("error_type", text(200)),
        sa.Column("route", text(200)), sa.Column("fingerprint", text(32)),
    )
    steps = sa.Table(
        "steps", meta,
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("ts", num, nullable=False, index=True),
        sa.Column("step", text(100), nullable=False), sa.Column("seconds", num),
    )
    lost = sa.Table(
        "lost", meta,
        sa.Column("ts", num, nullable=False), sa.Column("count", sa.Integer, nullable=False),
        sa.Column("reason", text(500)),
    )
    alerts = sa.Table(
        "alerts", meta,
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("ts", num, nullable=False), sa.Column("kind", text(50)),
        sa.Column("key", text(300)), sa.Column("payload", sa.Text),
    )
    acks = sa.Table(
        "acks", meta,
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("ts", num, nullable=False), sa.Column("by", text(200)),
        sa.Column("note", text(500)),
    )
    return calls, steps, lost, alerts, histogram.table(meta), *rollup.tables(meta), acks


class Store:
    """An engine and the tables, created on open; every method raises when the store is down."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            options["connect_args"] = {"timeout": 10}
        self.engine = sa.create_engine(url, **options)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        (self.calls, self.steps, self.lost, self.alerts, self.step_hist, self.usage_daily,
         self.rolled, self.acks) = tables()
        self.calls.metadata.create_all(self.engine)
        _add_columns(self.engine)
        self._insert_calls = self._insert_sql("calls", CALL_COLUMNS)
        self._insert_steps = self._insert_sql("steps", ("call_id", "ts", "step", "seconds"))

    def _insert_sql(self, table: str, columns: Sequence[str]) -> str:
        # driver-level executemany with tuples: Core's dict rows made ingest CPU-bound
        quote = self.engine.dialect.identifier_preparer.quote
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        return (f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "
                f"VALUES ({', '.join([mark] * len(columns))})")

    def write(self, records: Sequence[UsageRecord], lost: Sequence[tuple[float, int, str]] = ()
              ) -> None:
        """One transaction: the calls, their steps, and any loss counts to report."""
        call_rows = [_row(r) for r in records]
        step_rows = [(r.call_id, r.ts, s, v) for r in records for s, v in r.steps.items()]
        settled = time.time() - rollup.SETTLE_S
        late = [r.ts for r in records if r.ts < settled]
        with self.engine.begin() as conn:
            if call_rows:
                conn.exec_driver_sql(self._insert_calls, call_rows)
            if step_rows:
                conn.exec_driver_sql(self._insert_steps, step_rows)
            if late:
                rollup.forget(conn, self, late)
            if lost:
                conn.execute(self.lost.insert(),
                             [{"ts": t, "count": n, "reason": why} for t, n, why in lost])

    def dispose(self) -> None:
        self.engine.dispose()


def _row(r: UsageRecord) -> tuple[Any, ...]:
    return (r.call_id, r.request_id, r.ts, r.application, r.user, r.request_type, r.prompt,
            r.prompt_version, r.prompt_alias, r.model, r.provider, r.requested_model,
            r.tokens_in, r.tokens_out, r.tokens_cached, r.cost, r.priced, r.ttft_s,
            r.cache_hit, r.fallback, r.status, r.error_type, r.route, r.fingerprint)


def _add_columns(engine: Any) -> None:
    """A ledger made before ``ADDED_COLUMNS`` gets them, empty for its earlier rows."""
    import sqlalchemy as sa

    have = {c["name"] for c in sa.inspect(engine).get_columns("calls")}
    with engine.begin() as conn:
        for name in ADDED_COLUMNS:
            if name not in have:
                conn.exec_driver_sql(f"ALTER TABLE calls ADD COLUMN {name} VARCHAR(200)")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    try:
        cursor.execute("SELECT ln(2.0), floor(2.5)")
    except Exception:  # a SQLite built without its math functions: the rollups need two
        dbapi_connection.create_function("ln", 1, math.log, deterministic=True)
        dbapi_connection.create_function("floor", 1, math.floor, deterministic=True)
    cursor.close()
