"""--threads: a number as given, or auto: OMP_NUM_THREADS, else the free cores."""

from __future__ import annotations

import pytest

from tas_eval import device
from tas_eval.errors import UserError


def test_a_number_is_taken_as_given_and_nonsense_refused():
    assert device.resolve_threads("3") == 3 and device.resolve_threads(1) == 1
    for bad in ("0", "-2", "many"):
        with pytest.raises(UserError, match="--threads"):
            device.resolve_threads(bad)


def test_auto_takes_omp_num_threads_when_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert device.resolve_threads("auto") == 1


def test_auto_leaves_the_cores_other_processes_run_on(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    for busy, expected in ((0, 4), (1, 3), (3, 1), (9, 1)):
        monkeypatch.setattr(device, "runnable_elsewhere", lambda busy=busy: busy)
        assert device.resolve_threads("auto") == expected


def test_runnable_elsewhere_reads_the_running_count(monkeypatch, tmp_path):
    real_open = open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/loadavg":
            fake = tmp_path / "loadavg"
            fake.write_text("0.50 0.40 0.30 3/411 12345\n")
            return real_open(fake, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    assert device.runnable_elsewhere(reads=2, pause_s=0.0) == 2  # 3 running, this process among them
