"""The response cache: one read per run, answers committed by a writer thread."""

import sqlite3

from workbench.cache import ResponseCache, cache_key

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
