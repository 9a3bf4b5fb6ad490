"""The sessions of one server share its cores, fairly.

A teacher serves a class of twenty tabs from one small machine. A training step is cheap;
drawing it (serialising plot data, sending it, recomputing a loss surface) is not, and all of
that competes with the event loop that answers every tab's clicks. So every session that trains
registers here, and:

- `stretch()` says how much slower than normal the views refresh: 1 while few sessions train,
  then in proportion to their number (twenty sessions: each publishes every 1.25 s instead of
  every 0.25 s), capped so that a plot is never more than a few seconds old;
- `fair_pause(seconds)` says how long a worker rests after a step that took `seconds`, so that
  all training together uses at most TRAINING_SHARE of the cores (one of this machine's two),
  split evenly: a session asking for 1000 steps/s cannot starve the others.

`limit_blas_threads()` keeps numpy's BLAS to one thread per call: on a server the parallelism
comes from the sessions, and OpenBLAS's extra threads spin on the few cores the sessions share.
Plain Python (no panel), so the policy is tested headless.
"""
from __future__ import annotations

import threading
import weakref

FULL_RATE_SESSIONS = 4  # up to this many training sessions, every view refreshes at its normal rate
MAX_STRETCH = 8.0  # ... and never slower than this many times its normal interval
TRAINING_SHARE = 1.0  # all sessions' training steps together: at most this many cores

_lock = threading.Lock()
_training: "weakref.WeakSet" = weakref.WeakSet()
_blas_limited = False


def started(session) -> None:
    """`session` began training."""
    with _lock:
        _training.add(session)


def stopped(session) -> None:
    """`session` paused, diverged or closed."""
    with _lock:
        _training.discard(session)


def training() -> int:
    """How many sessions of this process are training now."""
    with _lock:
        return len(_training)


def stretch(n: int | None = None) -> float:
    """Factor for every refresh interval with `n` (default: the current number of) sessions training."""
    n = training() if n is None else n
    return min(max(1.0, n / FULL_RATE_SESSIONS), MAX_STRETCH)


def fair_pause(step_seconds: float, n: int | None = None) -> float:
    """Least rest after a step of `step_seconds`, so that n sessions' steps use TRAINING_SHARE of a core."""
    n = max(training() if n is None else n, 1)
    duty = min(TRAINING_SHARE / n, 1.0)  # the share of wall time one session may spend stepping
    return step_seconds * (1.0 / duty - 1.0)


def limit_blas_threads() -> None:
    """One BLAS thread per call, for the whole process (idempotent)."""
    global _blas_limited
    with _lock:
        if _blas_limited:
            return
        _blas_limited = True
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
