"""What production monitoring keeps next to the usage ledger: requests, guard hits,
people's feedback and online scores, in the ledger's own database (tables of their own).

Rows are written off the request path, like the ledger's: ``put`` queues a row and a
writer thread inserts them in batches. Texts are stored with personal data redacted,
whatever the guard policy, so neither the store nor an eval set made from it holds any.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("workbench.monitor")

FORMAT_VERSION = 1
_STOP: Any = object()


def tables(meta: Any) -> dict[str, Any]:
    import sqlalchemy as sa

    text, num = sa.String, sa.Float
    return {
        "served_requests": sa.Table(
            "served_requests", meta,
            sa.Column("request_id", sa.String(64), primary_key=True),
            sa.Column("ts", num, nullable=False, index=True),
            *(sa.Column(c, text(200)) for c in ("application", "user", "prompt", "alias",
                                                "model")),
            sa.Column("prompt_version", sa.Integer), sa.Column("inputs", sa.Text),
            sa.Column("output", sa.Text), sa.Column("flagged", sa.Boolean),
            sa.Column("blocked", sa.Boolean), sa.Column("sampled", sa.Boolean)),
        "guard_hits": sa.Table(
            "guard_hits", meta,
            sa.Column("request_id", sa.String(64), index=True),
            sa.Column("ts", num, nullable=False, index=True),
            *(sa.Column(c, text(200)) for c in ("application", "prompt", "guard", "stage",
                                                "action")),
            sa.Column("reason", sa.Text)),
        "request_feedback": sa.Table(
            "request_feedback", meta,
            sa.Column("request_id", sa.String(64), index=True),
            sa.Column("ts", num, nullable=False), sa.Column("score", num),
            sa.Column("comment", sa.Text), sa.Column("annotator", text(200))),
        "online_scores": sa.Table(
            "online_scores", meta,
            sa.Column("request_id", sa.String(64), index=True),
            sa.Column("ts", num, nullable=False, index=True),
            sa.Column("prompt", text(200)), sa.Column("prompt_version", sa.Integer),
            sa.Column("scorer", text(200)), sa.Column("value", num),
            sa.Column("reason", sa.Text), sa.Column("error", sa.Text),
            sa.Column("cost", num)),
    }


class MonitorStore:
    """The tables at ``url`` (default: the ledger's), created on open."""

    def __init__(self, url: str | None = None) -> None:
        import sqlalchemy as sa

        from ..observe.store import _sqlite_pragmas, default_url
        from ..observe.store import tables as ledger_tables

        self.url = url or default_url()
        options: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            path = self.url.split(":///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            options["connect_args"] = {"timeout": 10}
        self.engine = sa.create_engine(self.url, **options)
        if self.url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.calls = ledger_tables()[0]  # the ledger's, created by its writer
        meta = sa.MetaData()
        self.t = tables(meta)
        try:
            meta.create_all(self.engine)
        except sa.exc.OperationalError:  # another process made them between check and create
            meta.create_all(self.engine)

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self.t[table].insert(), rows)

    def frame(self, table: str, *where: Any) -> Any:
        import pandas as pd
        import sqlalchemy as sa

        query = sa.select(self.t[table])
        for clause in where:
            query = query.where(clause)
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn)

    def known_request(self, request_id: str) -> bool:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            for column in (self.t["served_requests"].c.request_id, self.calls.c.request_id):
                try:
                    hit = conn.execute(sa.select(column).where(column == request_id).limit(1))
                except sa.exc.OperationalError:  # no ledger table yet: nothing served
                    continue
                if hit.first() is not None:
                    return True
        return False


class MonitorLog:
    """A queue and a writer thread in front of a :class:`MonitorStore`; never blocks."""

    def __init__(self, url: str | None = None, *, queue_size: int = 50_000) -> None:
        self.url = url
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._store: MonitorStore | None = None
        self._lock = threading.Lock()
        self.lost = 0
        self._writer = threading.Thread(target=self._run, name="workbench-monitor", daemon=True)
        self._writer.start()

    def put(self, table: str, row: Mapping[str, Any], *, redact: tuple[str, ...] = ()
            ) -> None:
        """Queue a row; the writer redacts personal data from the ``redact`` fields and
        stores mappings and lists as JSON."""
        try:
            self._queue.put_nowait((table, dict(row), redact))
        except queue.Full:
            self.lost += 1

    def store(self) -> MonitorStore:
        with self._lock:
            if self._store is None:
                self._store = MonitorStore(self.url)
            return self._store

    def flush(self, timeout: float = 10.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline or not self._writer.is_alive():
                return False
            time.sleep(0.01)
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._queue.task_done()
                return
            batch = [item]
            while len(batch) < 2000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(b is _STOP for b in batch)
            rows = [b for b in batch if b is not _STOP]
            try:
                by_table: dict[str, list[dict[str, Any]]] = {}
                for table, row, fields in rows:
                    by_table.setdefault(table, []).append(_prepared(row, fields))
                store = self.store()
                for table, table_rows in by_table.items():
                    store.insert(table, table_rows)
            except Exception as exc:  # the monitor never fails a request
                self.lost += len(rows)
                log.warning("monitor store at %s: %d row(s) not written (%s: %s)",
                            self.url or "the ledger's database", len(rows),
                            type(exc).__name__, str(exc).splitlines()[0][:200])
            for _ in batch:
                self._queue.task_done()
            if stop:
                return

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._queue.put(_STOP)
        self._writer.join(timeout)


def _prepared(row: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    import json

    for name in fields:
        row[name] = redacted(row[name])
    return {k: json.dumps(v, default=str) if isinstance(v, dict | list) else v
            for k, v in row.items()}


def redacted(value: Any) -> Any:
    """``value`` with personal data replaced by its kind, in every string it holds."""
    from ..evaluation.scorers.safety import redact

    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


_logs: dict[str, MonitorLog] = {}
_opening = threading.Lock()


def default_log() -> MonitorLog:
    """The monitor log of the current project's ledger database, opened once per URL."""
    from ..observe.store import default_url

    url = default_url()
    with _opening:
        if url not in _logs:
            _logs[url] = MonitorLog(url)
        return _logs[url]


@atexit.register
def _close_all() -> None:
    for monitor_log in list(_logs.values()):
        monitor_log.close()
