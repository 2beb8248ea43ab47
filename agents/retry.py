"""The one retry layer of model requests: which errors to retry and how long to wait.

The ``openai`` SDK's own retries are off (``max_retries=0``); this policy, run by tenacity,
is the only one. It retries connection errors, timeouts, 408/409/429 and 5xx answers, waits
what ``Retry-After`` (or ``retry-after-ms``) asks when the server says, else backs off
exponentially with jitter, up to a cap. Everything here is pure except :meth:`retrying`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import tenacity

__all__ = ["RetryPolicy", "retry_after"]

_RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How a model request is retried.

    :param max_attempts: Requests in all, the first included (1 disables retries).
    :param initial_wait: The first backoff, in seconds, when the server gives no
        ``Retry-After``.
    :param max_wait: The cap of the exponential backoff.
    :param jitter: Up to this many seconds are added at random to a backoff.
    :param max_retry_after: The longest ``Retry-After`` honoured; a server asking for longer
        is not retried (the error is reported at once).
    """

    max_attempts: int = 3
    initial_wait: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0

    def is_retryable(self, error: BaseException) -> bool:
        """Whether ``error`` is worth another request."""
        if isinstance(error, openai.APIConnectionError):  # includes APITimeoutError
            return True
        if isinstance(error, httpx.TransportError):  # openai 2.x lets these out of a stream
            return True
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if status in _RETRY_STATUSES or status >= 500:
                wait = retry_after(error)
                return wait is None or wait <= self.max_retry_after
        return False

    def wait_for(self, attempt: int, error: BaseException | None, *, rand: float = 0.5) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) with ``error``.

        :param rand: A number in [0, 1) scaling the jitter (random in real use).
        """
        asked = retry_after(error) if error is not None else None
        if asked is not None:
            return min(asked, self.max_retry_after)
        backoff: float = min(self.max_wait, self.initial_wait * 2.0 ** (attempt - 1))
        return backoff + self.jitter * rand

    def retrying(
        self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> tenacity.AsyncRetrying:
        """A tenacity controller for this policy (``sleep`` is injectable for tests)."""

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return self.wait_for(state.attempt_number, error, rand=random.random())

        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(self.is_retryable),
            sleep=sleep,
            reraise=True,
        )


def retry_after(error: BaseException) -> float | None:
    """The delay a ``Retry-After``/``retry-after-ms`` header of the error's response asks for."""
    response: Any = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
