"""Retrying temporary broker failures, and keeping under the broker's request rate.

``RetryPolicy`` builds a tenacity ``AsyncRetrying`` loop: exponential backoff
with full jitter, a cap per wait, a cap on attempts and on the whole time spent,
and — when the server said when to come back (``Retry-After`` or Alpaca's
``X-RateLimit-Reset``) — never sooner than that. Which errors are retried is the
caller's choice (the Alpaca adapter retries ``BrokerUnavailable`` only); the
time to wait is read from the error's ``retry_after`` attribute (seconds), if any.

``SlidingWindowLimiter`` grants at most ``max_requests`` in any window of
``period`` seconds (Alpaca allows 200 requests a minute per account; the default
180 leaves room for a dashboard or a person using the same keys). A 429 can
pause it for everyone until the server's reset.

Why these and not others: tenacity is the maintained, widely used retry
library with native asyncio support and composable stop/wait rules, so we only
write the rate-limit-aware wait. Rate limiting is written here because the
common asyncio limiter (aiolimiter) is a leaky bucket: a full burst plus the
drain over the next minute lets through nearly twice its rate in one sliding
minute, which is exactly what Alpaca counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)

from alchemiser.clock import Clock, RealClock

__all__ = [
    "RetryPolicy",
    "SlidingWindowLimiter",
    "retry_after_seconds",
]

log = structlog.stdlib.get_logger("alchemiser.broker.retry")

Sleep = Callable[[float], Awaitable[None]]
BeforeSleep = Callable[[RetryCallState], Awaitable[None] | None]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header value by case-insensitive name (requests' headers are; a plain dict is not)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


def retry_after_seconds(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds until the server wants us back, from ``Retry-After`` or ``X-RateLimit-Reset``.

    ``Retry-After`` is delta-seconds or an HTTP date; ``X-RateLimit-Reset`` is
    Alpaca's: the Unix time (seconds) at which the rate-limit window resets.
    When both are present the later wins. Unparseable values are ignored.
    """
    waits: list[float] = []
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        text = retry_after.strip()
        try:
            waits.append(float(text))
        except ValueError:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                waits.append(parsedate_to_datetime(text).timestamp() - now_epoch)
    reset = _header(headers, "X-RateLimit-Reset")
    if reset:
        with contextlib.suppress(ValueError):
            waits.append(float(reset.strip()) - now_epoch)
    finite = [w for w in waits if math.isfinite(w)]
    if not finite:
        return None
    return max(0.0, *finite)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a temporary failure."""

    max_attempts: int = 6
    base_delay: float = 0.5  # seconds: the first backoff is uniform in [0, base]
    max_delay: float = 20.0  # cap of one backoff wait
    max_elapsed: float = 120.0  # give up rather than start a wait that ends past this
    # A server reset further away than this is not waited for (clock skew, a bad header).
    max_rate_limit_wait: float = 65.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "max_elapsed", "max_rate_limit_wait"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Full jitter (uniform in [0, min(cap, base × 2^(n-1))]) spreads clients
        apart; a server-given wait is honoured, plus a little jitter so that
        every waiting task does not return in the same instant.
        """
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(attempt - 1, 0))
        wait = random.uniform(0.0, ceiling)
        if retry_after is not None and retry_after > 0:
            honoured = min(retry_after, self.max_rate_limit_wait)
            wait = max(wait, honoured + random.uniform(0.0, min(self.base_delay, 1.0)))
        return wait

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        return self.backoff(state.attempt_number, retry_after)

    def retrying(
        self,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        *,
        sleep: Sleep | None = None,
        before_sleep: BeforeSleep | None = None,
    ) -> AsyncRetrying:
        """A tenacity loop that retries ``retry_on`` and re-raises the last error when it gives up."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_elapsed),
            wait=self._wait,
            retry=retry_if_exception_type(retry_on),
            reraise=True,
            sleep=sleep or asyncio.sleep,
            before_sleep=before_sleep,
        )


class SlidingWindowLimiter:
    """At most ``max_requests`` grants in any ``period`` seconds; waiters are served in order."""

    def __init__(
        self, max_requests: int = 180, period: float = 60.0, clock: Clock | None = None
    ) -> None:
        if max_requests < 1:
            raise ValueError(f"max_requests must be >= 1, got {max_requests}")
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        self.max_requests = max_requests
        self.period = float(period)
        self._clock: Clock = clock or RealClock()
        self._grants: deque[float] = deque()
        self._paused_until = -math.inf
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for a grant; returns the seconds waited."""
        start = self._clock.monotonic()
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                now = self._clock.monotonic()
                while self._grants and self._grants[0] <= now - self.period:
                    self._grants.popleft()
                delay = self._paused_until - now
                if delay <= 0 and len(self._grants) >= self.max_requests:
                    delay = self._grants[0] + self.period - now
                if delay <= 0:
                    self._grants.append(now)
                    return now - start
                await self._clock.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Grant nothing for ``seconds`` (the server said it is rate limiting us)."""
        if math.isfinite(seconds) and seconds > 0:
            until = self._clock.monotonic() + seconds
            if until > self._paused_until:
                self._paused_until = until
                log.info("rate_limit_pause", seconds=round(seconds, 3))

    def in_window(self) -> int:
        """Grants made within the last ``period`` seconds."""
        now = self._clock.monotonic()
        return sum(1 for t in self._grants if t > now - self.period)
