"""The response cache: one read per run, answers committed by a writer thread."""

import hashlib
import json
import sqlite3
import time

import pytest

from workbench.canonical import canonical_json
from workbench.gateway.cache import ResponseCache, cache_key

RECORD = {"text": "negative", "model": "openai/m", "prompt_tokens": 3, "completion_tokens": 1,
          "cost": 0.0, "latency_s": 0.1, "retries": 0, "fallback": False}


def key(n: int) -> str:
    return cache_key("openai/m", {}, [{"role": "user", "content": f"ticket {n}"}], 0)


def test_an_answer_is_visible_at_once_and_on_disk_after_flush(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    cache.put(key(1), "openai/m", RECORD)
    assert cache.get(key(1)) == RECORD  # this object sees it before the writer ran
    cache.flush()
    other = ResponseCache(tmp_path / "cache.sqlite")
    assert other.get(key(1)) == RECORD and len(other) == 1
    other.close()
    cache.close()


def test_close_commits_what_is_still_waiting(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    for n in range(50):
        cache.put(key(n), "openai/m", RECORD)
    cache.close()
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 50


def test_prefetched_keys_are_answered_without_a_query(tmp_path):
    writer = ResponseCache(tmp_path / "cache.sqlite")
    writer.put(key(1), "openai/m", RECORD)
    writer.close()
    cache = ResponseCache(tmp_path / "cache.sqlite")
    assert cache.prefetch([key(1), key(2), key(1)]) == 1
    cache._db.close()  # any query from here on would raise
    assert cache.contains(key(1)) and cache.get(key(1)) == RECORD
    assert not cache.contains(key(2)) and cache.get(key(2)) is None
    assert (cache.hits, cache.misses) == (1, 1)


HELLO = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(("written", "read_back"), [
    ({"temperature": 0, "max_tokens": 8}, {"max_tokens": 8.0, "temperature": 0.0}),
    ({"top_p": 1, "stop": "\n"}, {"top_p": 1.0, "stop": ["\n"]}),
    ({"seed": 7}, {"seed": 7, "user": None}),
    ({"response_format": {"type": "json_object", "n": 1}},
     {"response_format": {"n": 1.0, "type": "json_object"}}),
])
def test_parameters_spelt_differently_share_a_key(written, read_back):
    assert cache_key("openai/m", written, HELLO, 0) == cache_key("openai/m", read_back, HELLO, 0)


@pytest.mark.parametrize(("one", "other"), [
    ({"temperature": 0}, {"temperature": 0.1}),
    ({"logprobs": True}, {"logprobs": 1}),
    ({"stop": ["a", "b"]}, {"stop": ["b", "a"]}),
    ({}, {"max_tokens": 8}),
])
def test_parameters_that_change_the_answer_change_the_key(one, other):
    assert cache_key("openai/m", one, HELLO, 0) != cache_key("openai/m", other, HELLO, 0)


def legacy_key(model, params, messages, repeat, api_base=None):
    """A key as the first format computed it (parameters as written, v=1)."""
    payload = {"model": model, "params": dict(params), "messages": messages,
               "repeat": repeat, "api_base": api_base, "v": 1}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def test_a_cache_of_the_first_format_is_migrated_and_its_keys_are_never_read(tmp_path):
    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as db:  # a cache as the first format left it
        db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                   "record TEXT NOT NULL, created REAL NOT NULL)")
        db.execute("PRAGMA user_version=1")
        db.execute("INSERT INTO responses VALUES (?, 'openai/m', ?, 0)",
                   (legacy_key("openai/m", {}, HELLO, 0), json.dumps(RECORD)))
    cache = ResponseCache(path)
    assert cache.get(cache_key("openai/m", {}, HELLO, 0)) is None
    cache.put(cache_key("openai/m", {}, HELLO, 0), "openai/m", RECORD)
    cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        versions = [v for (v,) in db.execute("SELECT key_version FROM responses ORDER BY 1")]
    assert versions == [1, 2]  # the old answer is kept, told apart, and not reused


def held_by_another_process(path):
    """A connection that holds the write lock, as a second writer mid-transaction does."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


def on_disk(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_answers_wait_in_memory_while_the_database_is_locked_then_are_written(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    cache._db.execute("PRAGMA busy_timeout=20")  # give up on the lock quickly, and retry
    other = held_by_another_process(path)
    for n in range(30):
        cache.put(key(n), "openai/m", RECORD)
    time.sleep(0.4)  # several failed attempts
    cache.put(key(30), "openai/m", RECORD)  # a later answer is still taken
    assert all(cache.get(key(n)) == RECORD for n in range(31))
    assert cache.flush(timeout=0.2) == 31 and on_disk(path) == 0
    other.execute("ROLLBACK")
    assert cache.flush() == 0
    assert on_disk(path) == 31
    cache.put(key(31), "openai/m", RECORD)  # the connection is usable: no transaction left open
    cache.close()
    assert on_disk(path) == 32


def test_closing_while_the_lock_is_never_released_says_what_was_not_written(
        tmp_path, monkeypatch, caplog):
    import workbench.gateway.cache

    monkeypatch.setattr(workbench.gateway.cache, "FLUSH_TIMEOUT_S", 0.2)
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    cache._db.execute("PRAGMA busy_timeout=20")
    other = held_by_another_process(path)
    cache.put(key(1), "openai/m", RECORD)
    cache.close()  # returns instead of hanging on the lock
    other.execute("ROLLBACK")
    assert on_disk(path) == 0
    assert "1 answer(s) are in the results but not in the cache" in caplog.text
