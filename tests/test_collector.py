"""The collector is kept out of a run's way and handed back exactly as it was."""

import asyncio
import gc
import threading

import pytest

from workbench import Experiment, collector
from workbench.testing import FakeSend


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


# ---- a background run in a notebook (the Run panel's thread) ------------------------------

def kernel_settings():
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count() > 0  # frozen or not


@pytest.fixture(params=["thawed", "frozen"])
def kernel(request):
    """A kernel with settings of its own (not Python's defaults), its heap frozen or not."""
    saved = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(1234, 11, 12)
    gc.disable()
    if request.param == "frozen":
        gc.freeze()
    yield kernel_settings()
    gc.unfreeze()
    gc.set_threshold(*saved[0])
    if saved[1]:
        gc.enable()


def in_background(experiment, **options):
    """What the Run panel does: ``arun`` on a thread of its own, the kernel going on."""
    outcome = {}

    def work():
        try:
            outcome["results"] = asyncio.run(experiment.arun(progress=False, track=False,
                                                             **options))
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    return outcome


def _cancel_at(experiment, done):
    experiment.progress.listeners.append(
        lambda progress: progress.done >= done and experiment.cancel())


def _fail_at(experiment, done):
    def fail(progress):
        if progress.done >= done:
            raise RuntimeError("a listener failed")

    experiment.progress.listeners.append(fail)


@pytest.mark.parametrize("ending", ["finished", "cancelled", "failed"])
def test_a_background_run_hands_the_kernels_collector_back_as_it_found_it(
        offline_experiment, kernel, ending):
    experiment = Experiment.from_yaml(offline_experiment())
    if ending == "cancelled":
        _cancel_at(experiment, 5)
    elif ending == "failed":
        _fail_at(experiment, 3)
    inside = []
    send = FakeSend(lambda config, messages: inside.append(kernel_settings()) or "positive",
                    latency_s=0.01)

    outcome = in_background(experiment, send=send)

    assert kernel_settings() == kernel
    assert ("error" in outcome) == (ending == "failed")
    if ending == "cancelled":
        assert outcome["results"].partial.startswith("cancelled")
    assert inside and all(enabled is False for enabled, _, _ in inside)  # never re-enabled
