"""ETA lines for long steps where no progress bar is shown."""

from __future__ import annotations

from hw3.sentiment.progress import Eta, duration


def test_durations_read_naturally():
    assert [duration(s) for s in (0, 45.4, 65, 725, 6780)] == ["0s", "45s", "1m 05s", "12m 05s", "1h 53m"]


def test_eta_is_quiet_at_first_then_logs_at_most_every_period():
    now = [0.0]
    lines: list[str] = []
    eta = Eta("BERT features (train)", 1000, "reviews", lines.append, every=30, clock=lambda: now[0])
    now[0] = 10
    eta.advance(100)
    assert lines == []  # nothing in the first 30 s
    now[0] = 40
    eta.advance(300)
    assert lines == ["BERT features (train): 400/1,000 reviews, 40s so far, about 1m 00s left"]
    now[0] = 50
    eta.advance(100)
    assert len(lines) == 1
    now[0] = 100
    eta.advance(500)
    assert len(lines) == 1  # done: the step's own last line says so
