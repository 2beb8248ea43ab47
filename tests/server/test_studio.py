"""The Studio's files at ``/`` and ``/studio/``: served, public under a token, nothing else."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from stepstream.server import create_app

from ..conformance import workflows as cases


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app({"seqWf": cases.a_sequence()}, token="s3cret"))


def test_the_studio_page_and_modules_are_served_without_the_token(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="studio/main.js">' in page.text
    assert page.headers["cache-control"] == "no-cache"
    module = client.get("/studio/main.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "import" in module.text
    assert client.get("/studio/studio.css").headers["content-type"].startswith("text/css")


def test_the_api_still_needs_the_token_beside_the_studio(client: TestClient) -> None:
    assert client.get("/api/workflows").status_code == 401
    assert client.get("/health").status_code == 401
    ok = client.get("/api/workflows", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and "seqWf" in ok.json()


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("GET", "/studio/nothing.js", {404}),
        ("GET", "/studio/../app.py", {401, 404}),  # normalised to /app.py by the client
        ("GET", "/studio/%2e%2e/app.py", {401, 404}),
        ("GET", "/studio/..%2fapp.py", {401, 404}),
        ("POST", "/", {401}),  # only GET/HEAD of the files is public
        ("GET", "/studios", {401}),
    ],
)
def test_only_the_studio_files_are_public(
    client: TestClient, method: str, path: str, statuses: set[int]
) -> None:
    answer = client.request(method, path)
    assert answer.status_code in statuses, answer.text
    assert "def create_app" not in answer.text


def test_the_studio_is_served_where_the_app_is_mounted() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = create_app({"seqWf": cases.a_sequence()}, token="s3cret")
    host = Starlette(routes=[Mount("/wf", inner)])
    with TestClient(host) as http:
        assert http.get("/wf/").status_code == 200
        assert http.get("/wf/studio/api.js").status_code == 200
        assert http.get("/wf/api/workflows").status_code == 401
