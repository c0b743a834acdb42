"""common/timing.py: time_calls runs the warm-up calls untimed, then times each repeat on the device clock."""
import torch

from text2live_geo.common import timing


def test_time_calls_times_each_repeat_after_the_warmup(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    calls = []

    def step():  # the n-th call (from 0) takes n seconds
        now[0] += len(calls)
        calls.append(len(calls))

    times = timing.time_calls(step, torch.device("cpu"), repeats=3, warmup=2)
    assert calls == [0, 1, 2, 3, 4]  # two untimed calls, then three timed ones
    assert times == [2.0, 3.0, 4.0]  # each timed call's seconds, in call order
    assert timing.time_calls(step, torch.device("cpu"), repeats=0, warmup=0) == []
