"""A fuzz test of the whole API (hypothesis): random methods, paths, ids, query values, headers
and bodies against the real server find no 500 and no unbounded answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stepstream import get_plugin_manager
from stepstream.server import create_app, serve_in_thread
from stepstream.server.app import ENDPOINTS

from ..conformance import workflows as cases

MOST = 5_000_000  # no answer to a fuzzed request may be larger (bodies are at most 4.5 MiB)

ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
ids = st.one_of(
    st.sampled_from(["r1", "seq-1", "..", "../x", "/etc/passwd", "a" * 200, "-x", " ", "%00"]),
    st.text(max_size=20),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["1e3", "NaN", "-0", "0x10", " 7", "٣", "", "9" * 40]),
    ascii_text,
)
header_numbers = numbers.map(str.strip).filter(lambda s: s.isascii() and s.isprintable())
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "inputData": json_values,
            "runtimeContext": json_values,
            "step": st.one_of(st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3)),
            "resumeData": json_values,
            "event": json_values,
            "data": json_values,
        },
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str], dict[str, str], bytes | None]:
    endpoint = draw(st.sampled_from(ENDPOINTS))
    path = endpoint.path.replace(
        "{workflow_id}", quote(draw(st.sampled_from(["seqWf", "failWf", "nope"]) | ids), safe="")
    ).replace("{run_id}", quote(draw(ids), safe=""))
    method = draw(st.sampled_from([endpoint.method] * 4 + ["GET", "POST", "OPTIONS", "PUT"]))
    keys = st.sampled_from(["runId", "limit", "offset", "after", "fromDate", "resourceId"])
    query = draw(st.dictionaries(keys, st.one_of(ids, numbers), max_size=3))
    headers = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "Last-Event-ID": header_numbers,
                "Content-Type": st.sampled_from(["application/json", "text/plain", "x/y"]),
            },
        )
    )
    return method, path, query, headers, draw(bodies)


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[str]:
    app = create_app(
        {"seqWf": cases.a_sequence(), "failWf": cases.e_step_throws()},
        plugin_manager=get_plugin_manager(load_entrypoints=False, plugins=["metrics"]),
        keepalive=0.2,
    )
    with serve_in_thread(app) as url:
        yield url


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_no_request_gets_a_500_or_an_unbounded_answer(
    fuzzed: str, request: tuple[str, str, dict[str, str], dict[str, str], bytes | None]
) -> None:
    method, path, query, headers, body = request
    timeout = httpx.Timeout(10.0, read=3.0)
    with httpx.Client(base_url=fuzzed, timeout=timeout) as client:
        try:
            with client.stream(method, path, params=query, headers=headers, content=body) as answer:
                size = _bounded_read(answer)
        except httpx.ReadTimeout:
            return  # an open stream of a run that has not ended (watch of a pending run)
    assert answer.status_code < 500, (method, path, query, headers, body)
    assert size <= MOST
    if answer.headers.get("content-type", "").startswith("application/json") and size:
        _strict(answer.content)


def _bounded_read(answer: httpx.Response) -> int:
    size = 0
    chunks = []
    for chunk in answer.iter_raw():
        size += len(chunk)
        chunks.append(chunk)
        if size > MOST or b": ping\n\n" in chunk:  # an SSE stream that stays open: alive
            break
    answer._content = b"".join(chunks)
    return size


def _strict(raw: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(raw, parse_constant=refuse)
