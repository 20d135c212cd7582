"""The usage ledger: every model call is one record, written off the request path.

``record()`` only puts the record on a bounded queue; a writer thread takes it from there
in batches. When the queue is full the record is counted as lost and a warning is logged;
the count is written to the store's ``lost`` table so reports can say so. When the store is
down, records wait in memory (up to ``max_waiting``, beyond which they are counted as lost
too) and the writer retries with backoff; the outage and the recovery are logged once each.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from ..errors import WorkbenchError
from .record import UsageRecord

log = logging.getLogger("workbench.observe")

_open: weakref.WeakSet[Ledger] = weakref.WeakSet()
_STOP: Any = object()  # wakes an idle writer so that it sees it should stop


class LedgerError(WorkbenchError):
    """The usage ledger's store cannot be read or written."""


@dataclass(frozen=True)
class LedgerHealth:
    """What happened to the records given to a ledger, for a health check or a test."""

    url: str
    recorded: int
    written: int
    waiting: int
    lost: int
    store_error: str | None


class Ledger:
    """A queue, a writer thread and a store (``Store`` at ``url``, opened by the writer)."""

    def __init__(self, url: str, *, queue_size: int = 100_000, batch_size: int = 5_000,
                 interval_s: float = 0.2, max_waiting: int = 500_000,
                 retry_s: tuple[float, float] = (0.5, 30.0)) -> None:
        self.url = url
        self.batch_size, self.interval_s = batch_size, interval_s
        self.max_waiting, self.retry_s = max_waiting, retry_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._waiting: collections.deque[UsageRecord] = collections.deque()
        self._lost_unreported: list[tuple[float, int, str]] = []
        self._lock = threading.Lock()
        self._written = self._lost = 0
        self._full_warned_at = self._rolled_at = 0.0
        self._store: Any = None
        self._store_error: str | None = None
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._run, name="workbench-ledger", daemon=True)
        self._writer.start()
        _open.add(self)

    # -- the request path ----------------------------------------------------------------

    def record(self, record: UsageRecord) -> None:
        """Queue one record; never blocks. A full queue counts it as lost and warns."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._count_lost(1, "the ledger queue was full")

    def _count_lost(self, count: int, reason: str) -> None:
        with self._lock:
            self._lost += count
            self._lost_unreported.append((time.time(), count, reason))
        now = time.monotonic()
        if now - self._full_warned_at > 10.0:  # one warning per burst, the count in each
            self._full_warned_at = now
            log.warning("usage ledger: %s; %d record(s) lost so far (the count is kept in "
                        "the ledger's 'lost' table); the store at %s is slow or down",
                        reason, self._lost, self.url)

    # -- the writer ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.retry_s[0]
        while True:
            self._take()
            stopping = self._stopping.is_set()
            if self._waiting or self._lost_unreported:
                if self._write_waiting():
                    backoff = self.retry_s[0]
                elif stopping:
                    return
                else:
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, self.retry_s[1])
                    continue
            if stopping and self._queue.empty():
                return
            self._roll_up()

    def _take(self) -> None:
        """Move queued records to the waiting list: block for the first, then drain.

        An idle writer blocks without a timeout, so a ledger nobody uses costs no wake-ups.
        """
        idle = not (self._waiting or self._lost_unreported or self._stopping.is_set())
        try:
            item = self._queue.get(timeout=None if idle else self.interval_s)
        except queue.Empty:
            return
        if item is _STOP:
            self._queue.task_done()
            return
        self._waiting.append(item)
        overflow = 0
        for _ in range(self.batch_size * 10):
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.task_done()
            else:
                self._waiting.append(item)
        while len(self._waiting) > self.max_waiting:
            self._waiting.popleft()
            self._queue.task_done()
            overflow += 1
        if overflow:
            self._count_lost(overflow, f"more than {self.max_waiting} records waited for the "
                                       "store")

    def _write_waiting(self) -> bool:
        """Write what waits, a batch per transaction; False (and logged) if the store fails."""
        try:
            if self._store is None:
                from .store import Store

                self._store = Store(self.url)
            while self._waiting or self._lost_unreported:
                batch = [self._waiting[i] for i in range(min(self.batch_size,
                                                             len(self._waiting)))]
                with self._lock:
                    lost, self._lost_unreported = self._lost_unreported, []
                try:
                    self._store.write(batch, lost)
                except Exception:
                    with self._lock:
                        self._lost_unreported[:0] = lost
                    raise
                for _ in batch:
                    self._waiting.popleft()
                    self._queue.task_done()
                self._written += len(batch)
        except Exception as exc:
            first = self._store_error is None
            self._store_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            if first:
                log.warning("usage ledger: the store at %s failed (%s); %d record(s) wait in "
                            "memory and are retried", self.url, self._store_error,
                            len(self._waiting))
            return False
        if self._store_error is not None:
            log.info("usage ledger: the store at %s is back; waiting records written",
                     self.url)
            self._store_error = None
        return True

    def _roll_up(self, every_s: float = 60.0) -> None:
        """Roll up the periods of the last two days that are over (once a minute at most),
        so that reports find them done; a failure is left to the next report."""
        now = time.monotonic()
        if self._store is None or self._store_error or now - self._rolled_at < every_s:
            return
        self._rolled_at = now
        from .rollup import DAY, PERIODS, ensure

        try:
            for name in PERIODS:
                ensure(self._store, name, time.time() - 2 * DAY, time.time())
        except Exception as exc:
            log.info("usage ledger: rolling up %s failed (%s); reports roll it up instead",
                     self.url, exc)

    # -- reading and stopping ------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record given so far is written or counted lost; False on timeout."""
        deadline = time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0 or not self._writer.is_alive():
                    return False
                done.wait(min(left, 0.05))
        return True

    def health(self) -> LedgerHealth:
        waiting = self._queue.unfinished_tasks
        return LedgerHealth(url=self.url, recorded=self._written + waiting + self._lost,
                            written=self._written, waiting=waiting, lost=self._lost,
                            store_error=self._store_error)

    def store(self) -> Any:
        """The open store, for queries; a clear error when it cannot be opened."""
        self.flush(timeout=0.0 if self._store_error else 5.0)
        if self._store is None or self._store_error is not None:
            try:
                from .store import Store

                self._store = self._store or Store(self.url)
                with self._store.engine.connect():
                    pass
            except Exception as exc:
                waiting = self._queue.unfinished_tasks
                raise LedgerError(
                    f"the usage ledger at {self.url} cannot be read ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]}); {waiting} record(s) wait in memory. "
                    "fix: start the database or set WORKBENCH_LEDGER_URL to a reachable one"
                ) from exc
        return self._store

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting up to ``timeout``), then stop the writer."""
        self.flush(timeout)
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # a full queue wakes the writer anyway
            self._queue.put(_STOP, timeout=1.0)
        self._writer.join(timeout=max(timeout, self.interval_s * 2))
        left = self._queue.unfinished_tasks
        if left > 0:
            log.error("usage ledger: %d record(s) could not be written to %s (%s) and are "
                      "lost", left, self.url, self._store_error or "the writer did not finish")
        if self._store is not None:
            self._store.dispose()
        _open.discard(self)


@atexit.register
def _close_all() -> None:
    for ledger in list(_open):
        ledger.close(timeout=5.0)
