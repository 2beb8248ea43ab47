"""Fixtures for plugin tests: an in-memory span exporter on a tracer provider of the test's
own (for the ``otel`` plugin); the model server is the testing kit's ``model_server``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["provider", "span_exporter"]

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
