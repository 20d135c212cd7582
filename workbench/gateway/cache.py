"""Response cache on disk: a paid call is never made twice for the same request.

It is also what makes runs resumable: every completed call is committed the moment it
arrives, so an interrupted run re-executed finds its finished calls here. SQLite in WAL
mode survives ``kill -9`` of the writer; readers in other processes see committed rows.

The event loop never waits on SQLite: a run reads the keys it will need in one query
before it starts (``prefetch``), and answers are committed by a writer thread of their
own, every ``COMMIT_INTERVAL_S``: SQLite releases the GIL while it works, so a direct
query, or a writer woken by every answer, would stall the loop behind litellm's threads.
So an answer is on disk at most that interval after it arrived: a ``kill -9`` within it
costs that call being sent again on resume, never a wrong or duplicate row.

A write that fails (another process holding the database past the busy timeout, a full
disk) is rolled back and retried; meanwhile its answers are served from memory, so a paid
answer is never turned into an error by the disk.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..canonical import canonical_json

# Version of the key's payload: a key of another version never equals one of this, so an
# entry written under an older format is never read as an answer to a different request.
FORMAT_VERSION = 2

_MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS responses (
           key TEXT PRIMARY KEY,
           model TEXT NOT NULL,
           record TEXT NOT NULL,
           created REAL NOT NULL
       )""",
    # which key format wrote a row: rows of older formats stay, unreachable, and can be told apart
    "ALTER TABLE responses ADD COLUMN key_version INTEGER NOT NULL DEFAULT 1",
]

_CHUNK = 500  # keys per SELECT (SQLite allows 32,766 parameters)
COMMIT_INTERVAL_S = 0.05
RETRY_MAX_S = 1.0  # longest pause between two attempts to write, while writes fail
FLUSH_TIMEOUT_S = 30.0  # longest a flush waits while writes keep failing
log = logging.getLogger("workbench.cache")
_open: weakref.WeakSet[ResponseCache] = weakref.WeakSet()


def cache_key(model: str, params: Mapping[str, Any], messages: list[dict[str, str]],
              repeat: int, api_base: str | None = None) -> str:
    """Everything that changes an answer is in the key; nothing secret is.

    Parameters are compared as the provider reads them, not as they were spelt: the
    registry hands back ``temperature: 0`` as ``0.0`` and ``stop: "x"`` as ``["x"]``, and
    the same request must find the same answer whichever way it was written.
    """
    payload = {"model": model, "params": _normal_params(params), "messages": messages,
               "repeat": repeat, "api_base": api_base, "v": FORMAT_VERSION}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def _normal_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Call parameters in one spelling: whole floats as ints, ``stop`` as a list, no Nones."""
    normal = {str(k): _normal_value(v) for k, v in params.items() if v is not None}
    if isinstance(normal.get("stop"), str):
        normal["stop"] = [normal["stop"]]
    return normal


def _normal_value(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normal_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal_value(v) for v in value]
    return value


class ResponseCache:
    """Key → completion record (text, tokens, cost, original latency)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA busy_timeout=10000")
        self._wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self.hits = 0
        self.misses = 0
        # answers known in memory: prefetched (None = known absent) or written by this object
        self._known: dict[str, str | None] = {}
        self._pending: list[tuple[str, str, str, float]] = []
        self._pending_lock = threading.Lock()
        self._queued = 0  # answers given to put, ever
        self._committed = 0  # ... of which written
        self._unwritten = 0  # ... of which given up on when closing
        self._committed_changed = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._failing_since = 0.0  # monotonic time of the first failed write in a row
        _open.add(self)

    def _wal(self) -> None:
        """Switch to WAL; SQLite refuses at once (no busy wait) while another process holds
        a new cache's lock, so a few short waits."""
        for attempt in range(100):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)

    def _migrate(self) -> None:
        # one transaction holding the write lock: processes opening a new cache at once
        # would otherwise all read version 0 and apply the same migrations
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for number, statement in enumerate(_MIGRATIONS[version:], start=version + 1):
                self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- reading ------------------------------------------------------------------------
    def prefetch(self, keys: Iterable[str]) -> int:
        """Read these keys in a few queries so later ``get``/``contains`` need no query.

        Returns how many are stored. Only for keys this process will answer: an answer
        another process writes afterwards stays unseen by ``get`` for a prefetched key.
        """
        wanted = [k for k in dict.fromkeys(keys) if k not in self._known]
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                found = dict(self._db.execute(
                    f"SELECT key, record FROM responses WHERE key IN ({marks})", chunk))
            for key in chunk:
                self._known[key] = found.get(key)
        return sum(1 for k in dict.fromkeys(keys) if self._known.get(k) is not None)

    def _lookup(self, key: str) -> str | None:
        if key in self._known:
            return self._known[key]
        with self._lock:
            row = self._db.execute("SELECT record FROM responses WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def get(self, key: str) -> dict[str, Any] | None:
        record = self._lookup(key)
        if record is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(record)

    def contains(self, key: str) -> bool:
        """Whether an answer is stored, without counting a hit or a miss."""
        return self._lookup(key) is not None

    # ---- writing ------------------------------------------------------------------------
    def put(self, key: str, model: str, record: Mapping[str, Any]) -> None:
        """Hand the answer to the writer thread; visible to this object at once.

        Never raises for the disk: an answer that cannot be written yet stays in memory (and
        is served from there) while the writer retries.
        """
        text = json.dumps(record, ensure_ascii=False)
        self._known[key] = text
        with self._pending_lock:
            self._pending.append((key, model, text, time.time()))
            self._queued += 1
            if self._writer is None:
                self._stopping = False
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                name="workbench-cache-writer")
                self._writer.start()

    def _write_loop(self) -> None:
        wait = COMMIT_INTERVAL_S
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            with self._pending_lock:
                rows, self._pending = self._pending, []
                stopping = self._stopping
            if rows and not self._commit(rows):
                if stopping:  # closing and still failing: the answers stay only in results
                    self._give_up(rows)
                    return
                with self._pending_lock:  # first in line for the next attempt
                    self._pending[:0] = rows
                wait = min(wait * 2, RETRY_MAX_S)
                continue
            wait = COMMIT_INTERVAL_S
            if stopping:
                return

    def _commit(self, rows: list[tuple[str, str, str, float]]) -> bool:
        """One transaction for everything that arrived meanwhile; rolled back if it fails."""
        try:
            with self._lock:
                try:
                    self._db.execute("BEGIN")
                    self._db.executemany(
                        "INSERT OR REPLACE INTO responses(key, model, record, created, "
                        f"key_version) VALUES (?, ?, ?, ?, {FORMAT_VERSION})", rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # else every later BEGIN fails too
                        self._db.execute("ROLLBACK")
                    raise
        except Exception as exc:  # noqa: BLE001  (retried; the answers wait in memory)
            if self._failure is None:
                self._failing_since = time.monotonic()
                log.warning("the response cache %s cannot be written (%s): %d answer(s) "
                            "kept in memory, retrying", self.path, exc, len(rows))
            self._failure = exc
            return False
        if self._failure is not None:
            log.warning("the response cache %s is written again", self.path)
            self._failure = None
        for key, _model, text, _created in rows:  # committed: SQLite answers now
            if self._known.get(key) is text:
                del self._known[key]
        with self._committed_changed:
            self._committed += len(rows)
            self._committed_changed.notify_all()
        return True

    def _give_up(self, rows: list[tuple[str, str, str, float]]) -> None:
        log.error("the response cache %s could not be written (%s): %d answer(s) are in "
                  "the results but not in the cache, so a rerun sends them again",
                  self.path, self._failure, len(rows))
        with self._committed_changed:
            self._unwritten += len(rows)
            self._committed_changed.notify_all()

    def flush(self, timeout: float | None = None) -> int:
        """Wait until every answer given to ``put`` is committed; return how many are not.

        Once writes have failed for ``timeout`` seconds in a row (default
        ``FLUSH_TIMEOUT_S``), this returns the number still held in memory instead of
        waiting on: the writer keeps retrying them, and a caller's results are never held
        hostage by the disk.
        """
        limit = FLUSH_TIMEOUT_S if timeout is None else timeout
        target = self._queued
        self._wake.set()
        with self._committed_changed:
            while (self._writer is not None and self._writer.is_alive()
                   and self._committed + self._unwritten < target):
                if (self._failure is not None
                        and time.monotonic() >= self._failing_since + limit):
                    break
                self._committed_changed.wait(0.05)
            left = max(0, target - self._committed)
        if left:
            log.warning("the response cache %s: %d answer(s) not yet written (%s)",
                        self.path, left, self._failure)
        return left

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._writer is not None:
                with self._pending_lock:
                    self._stopping = True
                self._wake.set()
                self._writer.join()
                self._writer = None
            with self._lock:
                self._db.close()
            _open.discard(self)

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, hits={self.hits}, misses={self.misses})"


@atexit.register
def _flush_open_caches() -> None:
    # the writer thread is a daemon: commit what it holds before the interpreter goes
    for cache in list(_open):
        with contextlib.suppress(Exception):
            cache.flush()
