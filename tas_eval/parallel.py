"""One function over many inputs in worker processes, the results in input order.

Used where the work is CPU-bound numpy and scipy (rendering, building clips), so that the results are
the same for any number of workers: the caller draws every random choice in its own process and in
order, and the workers only compute from what they are given.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (Linux)
IN_FLIGHT_PER_WORKER = 8  # inputs handed out ahead of the results read, per worker


def end_with_parent(parent: int) -> None:
    """Make a worker end when the process that started it dies, even by kill -9 (Linux's parent-death
    signal), instead of working on and holding the caller's terminal."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the worker ends when it finds the pool gone
        pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def worker_count(requested: int | None = None) -> int:
    """The number of worker processes to use: ``requested``, or when it is None or 0 every core this
    process may run on (its CPU affinity where the platform has one, so a container pinned to a few
    cores of a large machine does not start one worker per core of the machine)."""
    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """``fn(item)`` for every item, yielded in the order of ``items``. With ``workers`` <= 1 it runs in this
    process; otherwise in that many worker processes (forked where the platform forks, so they share what
    this process has loaded), with at most IN_FLIGHT_PER_WORKER inputs per worker taken from ``items``
    ahead of the results read, so a long lazy input is never held whole. ``fn`` must pickle (a module-level
    function, or a functools.partial of one); a worker's exception is raised here, a dead worker raises
    BrokenProcessPool."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=end_with_parent, initargs=(os.getpid(),)) as pool:
        pending: collections.deque = collections.deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # on an error or an early stop, do not wait for work nobody will read
            for future in pending:
                future.cancel()
