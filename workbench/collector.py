"""Python's garbage collector, kept out of the way while an experiment runs.

A notebook that imported mlflow, pandas and litellm holds millions of objects. Each full
collection walks all of them, at any moment a run happens to allocate enough,
and the calls, the scoring and the MLflow logging all allocate a lot. Inside ``quiet()``
the objects alive before it are frozen (left out of every pass) and young collections run
less often; both are handed back when the outermost ``quiet()`` ends, so nothing leaks.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# allocations between young collections (Python's default is 700): once the heap is frozen,
# frequent young passes are most of what the collector still costs a call
YOUNG_COLLECTION_THRESHOLD = 5000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, ...] = ()
_froze = False  # whether the outermost quiet() froze the heap (and so must unfreeze it)


@contextmanager
def quiet() -> Iterator[None]:
    """Freeze the heap and collect young objects less often; restore on the way out.

    Re-entrant and shared by threads: only the outermost ``quiet()`` changes the collector,
    since an inner ``gc.unfreeze()`` would unfreeze the outer one's objects too. A heap the
    caller froze is left as it is: unfreezing at the end would thaw the caller's objects.
    """
    global _depth, _saved, _froze
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
            gc.set_threshold(max(_saved[0], YOUNG_COLLECTION_THRESHOLD), *_saved[1:])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
                if _froze:
                    gc.unfreeze()
