"""zooscope._timing: exclusive stage totals, checked on a fake clock (no real timing)."""

from __future__ import annotations

import threading

import pytest

from zooscope import _timing


@pytest.fixture
def clock(monkeypatch):
    """Both clocks replaced by one that only moves when the test says so."""
    now = [0.0]
    monkeypatch.setitem(_timing._CLOCKS, "wall", lambda: now[0])
    monkeypatch.setitem(_timing._CLOCKS, "cpu", lambda: 2 * now[0])
    _timing.reset()
    yield now
    _timing.reset()


def test_a_stage_excludes_the_stages_inside_it(clock):
    with _timing.stage("forward"):
        clock[0] += 1.0
        with _timing.stage("srp"):
            clock[0] += 0.25
            with _timing.stage("gram"):
                clock[0] += 0.5
        clock[0] += 2.0
    with _timing.stage("srp"):  # totals add up over calls
        clock[0] += 0.125
    assert _timing.totals() == {"forward": 3.0, "srp": 0.375, "gram": 0.5}
    assert _timing.totals("cpu") == {"forward": 6.0, "srp": 0.75, "gram": 1.0}
    assert sum(_timing.totals().values()) == clock[0]  # the stages cover the time exactly once


def test_a_failing_block_still_counts_and_unwinds(clock):
    with pytest.raises(RuntimeError), _timing.stage("outer"):
        with _timing.stage("inner"):
            clock[0] += 1.0
            raise RuntimeError
    with _timing.stage("after"):
        clock[0] += 1.0
    assert _timing.totals() == {"outer": 0.0, "inner": 1.0, "after": 1.0}


def test_threads_keep_their_own_nesting(clock):
    def work() -> None:
        with _timing.stage("thread"):
            pass

    with _timing.stage("main"):
        clock[0] += 1.0
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    # The thread's stage is not inside "main": it does not reduce main's exclusive time.
    assert _timing.totals()["main"] == 1.0 and _timing.totals()["thread"] == 0.0
