"""Progress of long steps: tqdm bars on a terminal or in a notebook, and ETA lines where there are none."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


def bar(iterable: Iterable, desc: str, enabled: bool) -> Iterable:
    """`iterable` wrapped in a tqdm bar (which shows its own ETA) when enabled, else as it is."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, unit="batch")


def duration(seconds: float) -> str:
    """'45s', '12m 05s' or '1h 52m'."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class Eta:
    """Logs 'LABEL: done/total UNIT, ELAPSED so far, about LEFT left' at most every `every` seconds.

    Nothing is logged during the first `every` seconds, so short steps stay quiet.
    """

    def __init__(self, label: str, total: int, unit: str, log: Callable[[str], None] = print,
                 every: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.unit, self.log, self.every, self.clock = label, total, unit, log, every, clock
        self.start = self.last = clock()
        self.done = 0

    def advance(self, n: int) -> None:
        """Count `n` more units done; log a line when `every` seconds passed since the last one."""
        self.done += n
        now = self.clock()
        if now - self.last < self.every or not 0 < self.done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed * (self.total - self.done) / self.done
        self.log(f"{self.label}: {self.done:,}/{self.total:,} {self.unit}, {duration(elapsed)} so far, about {duration(left)} left")
