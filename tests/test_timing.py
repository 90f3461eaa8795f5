"""The one clock: Stopwatch durations and time_calls' summaries are well formed (no speed assertions)."""

import time

from fer_keras.timing import Stopwatch, summarise, time_calls


def test_stopwatch_counts_up_in_seconds_and_minutes():
    clock = Stopwatch()
    time.sleep(0.01)
    seconds = clock.seconds
    assert seconds >= 0.01
    assert 0 < clock.minutes < 1 and clock.seconds >= seconds


def test_time_calls_skips_warmup_and_summarises():
    calls = []
    seconds = time_calls(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(seconds) == 3 and all(s >= 0 for s in seconds)
    assert summarise(seconds)["n"] == 3
