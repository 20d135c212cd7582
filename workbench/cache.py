"""Response cache on disk: a paid call is never made twice for the same request.

It is also what makes runs resumable: every completed call is committed the moment it
arrives, so an interrupted run re-executed finds its finished calls here. SQLite in WAL
mode survives ``kill -9`` of the writer; readers in other processes see committed rows.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .prompts import canonical_json

FORMAT_VERSION = 1

_MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS responses (
           key TEXT PRIMARY KEY,
           model TEXT NOT NULL,
           record TEXT NOT NULL,
           created REAL NOT NULL
       )""",
]


def cache_key(model: str, params: Mapping[str, Any], messages: list[dict[str, str]],
              repeat: int, api_base: str | None = None) -> str:
    """Everything that changes an answer is in the key; nothing secret is."""
    payload = {"model": model, "params": dict(params), "messages": messages,
               "repeat": repeat, "api_base": api_base, "v": FORMAT_VERSION}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class ResponseCache:
    """Key → completion record (text, tokens, cost, original latency)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()
        self.hits = 0
        self.misses = 0

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, statement in enumerate(_MIGRATIONS[version:], start=version + 1):
            self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={number}")

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM responses WHERE key=?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def contains(self, key: str) -> bool:
        """Whether an answer is stored, without counting a hit or a miss."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM responses WHERE key=?", (key,)).fetchone()
        return row is not None

    def put(self, key: str, model: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses(key, model, record, created) VALUES (?, ?, ?, ?)",
                (key, model, json.dumps(record, ensure_ascii=False), time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, hits={self.hits}, misses={self.misses})"
