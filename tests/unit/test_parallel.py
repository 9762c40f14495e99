"""ordered_map: results in input order for any number of workers, errors surfaced, input read lazily;
worker_count: the default is the cores this process may use."""

from __future__ import annotations

import math
import os

import pytest

from tas_eval.parallel import IN_FLIGHT_PER_WORKER, ordered_map, worker_count


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_in_input_order(workers):
    items = [9.0, 1.0, 16.0, 4.0, 0.0] * 7
    assert list(ordered_map(math.sqrt, items, workers)) == [math.sqrt(x) for x in items]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_item_raises_its_error(workers):
    with pytest.raises(ValueError, match="math domain error"):
        list(ordered_map(math.sqrt, [4.0, -1.0, 9.0], workers))


def test_the_input_is_read_only_a_bounded_way_ahead_of_the_results():
    taken = []

    def items():
        for i in range(1000):
            taken.append(i)
            yield float(i)

    results = ordered_map(math.sqrt, items(), 2)
    assert next(results) == 0.0
    assert len(taken) <= IN_FLIGHT_PER_WORKER * 2 + 1
    results.close()


def test_the_default_worker_count_is_the_cores_this_process_may_use():
    assert worker_count(3) == 3
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert worker_count() == worker_count(0) == allowed
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) > 1:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(before)})
        try:
            assert worker_count() == 1
        finally:
            os.sched_setaffinity(0, before)
