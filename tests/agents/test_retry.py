"""The retry policy is pure: which errors are retried and how long each wait is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import openai
import pytest

from stepstream.agents import RetryPolicy
from stepstream.agents.retry import retry_after


def status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    response = SimpleNamespace(status_code=status, headers=headers or {}, request=None)
    cls = {429: openai.RateLimitError, 500: openai.InternalServerError}.get(
        status, openai.APIStatusError
    )
    return cls(f"status {status}", response=response, body=None)  # type: ignore[arg-type]


def connection_error() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (connection_error(), True),
        (status_error(429), True),
        (status_error(500), True),
        (status_error(503), True),
        (status_error(408), True),
        (status_error(400), False),
        (status_error(401), False),
        (status_error(404), False),
        (status_error(429, {"retry-after": "3600"}), False),  # longer than we would wait
        (ValueError("not a model error"), False),
    ],
)
def test_which_errors_are_retried(error: BaseException, retryable: bool) -> None:
    assert RetryPolicy().is_retryable(error) is retryable


def test_retry_after_headers() -> None:
    assert retry_after(status_error(429, {"retry-after": "2"})) == 2.0
    assert retry_after(status_error(429, {"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after(status_error(429, {"retry-after": soon})) or 0) <= 30
    assert retry_after(status_error(429, {"retry-after": "soon-ish"})) is None
    assert retry_after(status_error(500)) is None
    assert retry_after(ValueError()) is None


def test_waits_honour_retry_after_else_back_off_with_a_cap() -> None:
    policy = RetryPolicy(initial_wait=0.5, max_wait=4.0, jitter=0.2, max_retry_after=10)
    assert policy.wait_for(1, status_error(429, {"retry-after": "1.5"})) == 1.5
    assert policy.wait_for(1, status_error(429, {"retry-after": "8"})) == 8.0
    assert policy.wait_for(1, status_error(500), rand=0.0) == 0.5
    assert policy.wait_for(2, status_error(500), rand=0.0) == 1.0
    assert policy.wait_for(6, status_error(500), rand=0.0) == 4.0  # capped
    assert policy.wait_for(1, status_error(500), rand=1.0) == pytest.approx(0.7)


@pytest.mark.asyncio
async def test_retrying_stops_after_max_attempts_and_reraises() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    calls = 0
    with pytest.raises(openai.InternalServerError):
        async for attempt in RetryPolicy(max_attempts=3, jitter=0).retrying(sleep):
            with attempt:
                calls += 1
                raise status_error(500)
    assert calls == 3 and slept == [0.5, 1.0]

    calls = 0
    with pytest.raises(openai.APIStatusError):
        async for attempt in RetryPolicy().retrying(sleep):
            with attempt:
                calls += 1
                raise status_error(400)
    assert calls == 1
