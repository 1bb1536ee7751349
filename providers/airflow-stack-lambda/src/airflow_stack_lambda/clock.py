"""Time as the follower sees it, injectable so tests run on a fake clock with no sleeps."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock milliseconds (CloudWatch's unit) and a blocking sleep."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait, blocking the thread (the worker's non-deferrable mode)."""
        ...


class AsyncClock(Protocol):
    """Wall-clock milliseconds and a sleep that yields to the event loop (the triggerer)."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait without blocking the triggerer's other triggers."""
        ...


class SystemClock:
    """The real clock, for both the worker and the triggerer."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000

    def sleep(self, seconds: float) -> None:
        """``time.sleep``."""
        time.sleep(seconds)


class SystemAsyncClock(SystemClock):
    """The real clock with ``asyncio.sleep``."""

    async def sleep(self, seconds: float) -> None:  # type: ignore[override]
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)
