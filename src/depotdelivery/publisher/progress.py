"""A one-line progress display (files, bytes, rate, ETA) for long work on a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from depotdelivery.units import human_bytes

__all__ = ["ProgressLine"]


class ProgressLine:
    """Redraws ``phase: files/total, bytes/total, rate, ETA`` in place on ``stream``.

    Only draws when ``stream`` is a terminal (a CI log must not fill with carriage returns);
    redraws at most ``hz`` times a second so reporting never costs more than the work.
    """

    def __init__(self, stream: TextIO | None = None, *, hz: float = 8.0, force: bool = False) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = force or bool(getattr(self.stream, "isatty", lambda: False)())
        self._interval = 1.0 / hz
        self._phase = ""
        self._total_files = 0
        self._total_bytes = 0
        self._start = 0.0
        self._last = 0.0
        self._drawn = False

    def start(self, phase: str, total_files: int, total_bytes: int) -> None:
        self._phase, self._total_files, self._total_bytes = phase, total_files, total_bytes
        self._start = self._last = time.monotonic()

    def update(self, files: int, nbytes: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        rate = nbytes / elapsed
        left = self._total_bytes - nbytes
        eta = f"{int(left / rate) // 60}:{int(left / rate) % 60:02d}" if rate > 0 and left > 0 else "0:00"
        line = (f"{self._phase}: {files}/{self._total_files} files, {human_bytes(nbytes)}/"
                f"{human_bytes(self._total_bytes)}, {human_bytes(rate)}/s, ETA {eta}")
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """Clear the line so the next output starts clean."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
