"""Auth, CORS and the body limit hold for every route, however the app is mounted."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

from stepstream import get_plugin_manager
from stepstream.server import create_app, serve_in_thread
from stepstream.server.app import ENDPOINTS

from ..conformance import workflows as cases

TOKEN = "s3cret"


def _app(**options: object) -> Starlette:
    return create_app(
        {"seqWf": cases.a_sequence(), "approvalWf": cases.i_suspend_resume()},
        plugin_manager=get_plugin_manager(load_entrypoints=False, plugins=["metrics"]),
        **options,  # type: ignore[arg-type]
    )


def _mounted_in_starlette() -> tuple[object, str]:
    return Starlette(routes=[Mount("/wf", app=_app(token=TOKEN))]), "/wf"


def _mounted_in_fastapi() -> tuple[object, str]:
    api = FastAPI()
    api.mount("/wf", _app(token=TOKEN))
    return api, "/wf"


@pytest.fixture(params=["direct", "starlette-mount", "fastapi-mount"])
def guarded(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of a token-guarded app: served directly or mounted under a prefix."""
    if request.param == "direct":
        app, prefix = _app(token=TOKEN), ""
    elif request.param == "starlette-mount":
        app, prefix = _mounted_in_starlette()
    else:
        app, prefix = _mounted_in_fastapi()
    with serve_in_thread(app) as url:  # type: ignore[arg-type]
        yield url + prefix


def _every_route() -> list[tuple[str, str]]:
    routes = []
    for endpoint in ENDPOINTS:
        path = endpoint.path.replace("{workflow_id}", "approvalWf").replace("{run_id}", "r1")
        query = "?runId=r1" if "runId" in endpoint.query else ""
        routes += [(endpoint.method, path + query), ("OPTIONS", path)]
    return routes


def test_every_route_needs_the_token_wherever_the_app_is_mounted(guarded: str) -> None:
    routes = _every_route()
    assert {"/api/workflows/approvalWf/watch?runId=r1", "/metrics", "/openapi.json"} <= {
        p for _, p in routes
    }
    with httpx.Client(base_url=guarded, timeout=10) as client:
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                refused = client.request(method, path, headers=headers, json={})
                assert refused.status_code == 401, (method, path, headers)
                assert refused.json() == {"error": "missing or invalid bearer token"}
                assert refused.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/health", headers=auth).json()["status"] == "ok"
        assert client.get("/api/workflows", headers=auth).status_code == 200
        run_id = client.post("/api/workflows/seqWf/create-run", headers=auth).json()["runId"]
        with client.stream(
            "POST",
            f"/api/workflows/seqWf/stream?runId={run_id}",
            headers=auth,
            json={"inputData": {"value": 1}},
        ) as streamed:
            assert b'"finish"' in streamed.read()


def test_cors_preflights_are_answered_without_the_token_and_errors_carry_cors_headers() -> None:
    app = _app(token=TOKEN, cors_origins=["http://ui.test"])
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        preflight = client.options(
            "/api/workflows/seqWf/stream",
            headers={
                "Origin": "http://ui.test",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://ui.test"
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        stranger = client.options(
            "/api/workflows",
            headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "GET"},
        )
        assert stranger.status_code == 400
        assert "access-control-allow-origin" not in stranger.headers
        refused = client.get("/api/workflows", headers={"Origin": "http://ui.test"})
        assert refused.status_code == 401  # ...and the page can read why
        assert refused.headers["access-control-allow-origin"] == "http://ui.test"
        ok = client.get(
            "/api/workflows",
            headers={"Origin": "http://ui.test", "Authorization": f"Bearer {TOKEN}"},
        )
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://ui.test"


def test_without_cors_no_cors_header_is_sent() -> None:
    with serve_in_thread(_app()) as url:
        answered = httpx.get(f"{url}/api/workflows", headers={"Origin": "http://ui.test"})
    assert answered.status_code == 200
    assert "access-control-allow-origin" not in answered.headers


def test_bodies_over_the_limit_are_refused_with_413_declared_or_chunked() -> None:
    with serve_in_thread(_app(body_limit=1000)) as url, httpx.Client(base_url=url) as client:
        path = "/api/workflows/seqWf/start-async"
        small = client.post(path, json={"inputData": {"value": 1}, "pad": "x" * 900})
        assert small.status_code == 200
        declared = client.post(path, json={"inputData": {"value": 1}, "pad": "x" * 2000})
        assert declared.status_code == 413
        assert declared.json() == {"error": "the request body is larger than 1000 bytes"}

        def chunked() -> Iterator[bytes]:
            yield b'{"inputData": {"value": 1}, "pad": "'
            for _ in range(40):
                yield b"x" * 100
            yield b'"}'

        streamed = client.post(
            path, content=chunked(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert client.get("/api/workflows/seqWf/runs").json()["total"] == 1  # nothing stored


def test_the_default_limit_is_mastras_4_5_mib() -> None:
    with serve_in_thread(_app()) as url, httpx.Client(base_url=url) as client:
        path = "/api/workflows/seqWf/start-async"
        big = client.post(path, json={"inputData": {"value": 1}, "pad": "x" * 4_800_000})
        assert big.status_code == 413
        fits = client.post(path, json={"inputData": {"value": 1}, "pad": "x" * 4_600_000})
        assert fits.status_code == 200
