"""Fixtures for plugin tests: the agents' real model server, and an in-memory span
exporter on a tracer provider of the test's own (for the ``otel`` plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..agents.conftest import model_server

__all__ = ["model_server", "provider", "span_exporter"]

try:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
except ImportError:  # the otel extra is missing: its tests are skipped
    pass
else:

    @pytest.fixture
    def span_exporter() -> InMemorySpanExporter:
        return InMemorySpanExporter()

    @pytest.fixture
    def provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        yield provider
        provider.shutdown()
