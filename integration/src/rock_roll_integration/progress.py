"""The demo's progress, readable in a terminal and in a log file.

One bar per stage, counted in that stage's units (validation: episodes, warm-up: iterations, RL: steps),
showing what the rollout waits for (env starts, resets, steps, generation) as roll's env managers report
it (`TrajEnvManager.progress`). When the stream is not a terminal there is no bar: a plain line is written
at each stage and every `interval` seconds, so a log shows the job advancing (or what it is stuck on).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from tqdm.auto import tqdm


class DemoProgress:
    def __init__(self, stream: TextIO | None = None, interval: float = 15.0, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._name, self._unit, self._total, self._done = "", "", 0, 0
        self._episodes = 0  # episodes finished since the stage's last unit (RL step, warm-up iteration)
        self._waiting, self._note = "", ""
        self._bar: tqdm | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not self.tty:
            self._ticker = threading.Thread(target=self._tick, name="demo-progress", daemon=True)
            self._ticker.start()

    # -- what the demo reports
    def stage(self, name: str, total: int = 0, unit: str = "") -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            self._name, self._unit, self._total, self._done = name, unit, total, 0
            self._episodes, self._waiting, self._note = 0, "", ""
            if self.tty and total:
                self._bar = tqdm(total=total, desc=name, unit=unit, file=self.stream, dynamic_ncols=True)
        if not self.tty:
            self._line()

    def advance(self, n: int = 1, note: str = "") -> None:
        """`n` units of the stage done (`note`: e.g. the step's score)."""
        with self._lock:
            self._done += n
            self._episodes = 0
            self._note = note
            if self._bar is not None:
                self._bar.update(n)
                self._bar.set_postfix_str(self._postfix(), refresh=True)

    def env(self, episodes: int, waiting: str) -> None:
        """An env manager's report: `episodes` just finished, or (0) what it is waiting for now."""
        with self._lock:
            if episodes:
                if self._unit == "episodes":
                    self._done += episodes
                    if self._bar is not None:
                        self._bar.update(episodes)
                else:
                    self._episodes += episodes
            else:  # what it waits for now ("" when the rollout is over)
                self._waiting = waiting
            if self._bar is not None:
                self._bar.set_postfix_str(self._postfix(), refresh=True)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    # -- rendering
    def _postfix(self) -> str:
        parts = [self._note] if self._note else []
        if self._episodes:
            parts.append(f"{self._episodes} episodes into the next {self._unit.rstrip('s')}")
        if self._waiting:
            parts.append(self._waiting)
        return "; ".join(parts)

    def line(self) -> str:
        """The plain progress line: elapsed time, stage, count, what it waits for."""
        with self._lock:
            elapsed = int(time.monotonic() - self._t0)
            count = f" {self._done}/{self._total} {self._unit}" if self._total else ""
            postfix = self._postfix()
            return f"[{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {self._name}{count}" + (
                f"; {postfix}" if postfix else ""
            )

    def _line(self) -> None:
        print(self.line(), file=self.stream, flush=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._line()
