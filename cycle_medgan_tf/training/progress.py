"""A small progress bar with losses and ETA for long CPU runs (a line per update on a TTY, sparse otherwise)."""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """``update(step, values)`` redraws ``label step/total [====>   ] pct s/step ETA values``."""

    def __init__(self, total: int, start: int = 0, label: str = "", stream=None, min_interval_s: float | None = None):
        self.total, self.start, self.label = int(total), int(start), label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval_s = (0.2 if self.tty else 30.0) if min_interval_s is None else min_interval_s
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, step: int, values: dict | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s and step < self.total:
            return
        self._last = now
        done = step - self.start
        rate = (now - self.t0) / done if done > 0 else 0.0
        eta = rate * (self.total - step)
        width = 24
        filled = int(width * step / max(self.total, 1))
        bar = "=" * max(filled - 1, 0) + (">" if 0 < filled < width else "=" if filled else "") + " " * (width - filled)
        vals = " ".join(f"{k}={v:.4g}" for k, v in (values or {}).items())
        line = (f"{self.label} {step}/{self.total} [{bar}] {100.0 * step / max(self.total, 1):5.1f}% "
                f"{rate:.2f}s/step ETA {format_duration(eta)} {vals}")
        if self.tty:
            self.stream.write("\r" + line[:200].ljust(120))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
