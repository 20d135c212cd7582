"""The collector is kept out of a run's way and handed back exactly as it was."""

import gc
import threading

from workbench import collector


def test_objects_alive_before_are_frozen_inside_and_handed_back_after():
    before = (gc.get_threshold(), gc.get_freeze_count())
    alive = [object() for _ in range(1000)]
    with collector.quiet():
        assert gc.get_freeze_count() >= len(alive)
        assert gc.get_threshold()[0] >= collector.YOUNG_COLLECTION_THRESHOLD
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_an_inner_quiet_leaves_the_outer_one_frozen():
    with collector.quiet():
        with collector.quiet():
            pass
        # an inner gc.unfreeze() would have thawed the outer quiet()'s objects (count 0)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_heap_the_caller_froze_stays_frozen_after():
    gc.freeze()
    try:
        with collector.quiet():
            pass
        assert gc.get_freeze_count() > 0  # not thawed
    finally:
        gc.unfreeze()


def test_a_failure_inside_still_restores_the_collector():
    before = gc.get_threshold()
    try:
        with collector.quiet():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_runs_in_two_threads_restore_only_when_both_ended():
    before = gc.get_threshold()
    inside, release = threading.Event(), threading.Event()

    def other():
        with collector.quiet():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    with collector.quiet():
        pass
    assert gc.get_freeze_count() > 0  # the other thread's run is still going
    release.set()
    thread.join(5)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
