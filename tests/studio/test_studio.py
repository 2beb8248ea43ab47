"""The Studio in a real browser against ``stepstream serve``: each view and action."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from stepstream.testing import ModelServer, bulk_responder

from .conftest import GatedPlanner, Proxy, Studio, serve_studio

# A page waits for these with Playwright's own polling of the DOM (no sleeps).
STATUS = "document.querySelector('#run-status')?.dataset.status"


def _status_is(page: Any, status: str) -> None:
    page.wait_for_function(f"{STATUS} === {status!r}")


def _shown(page: Any, hash_: str) -> None:
    """Wait until the view for ``hash_`` is on screen (not only its address)."""
    page.wait_for_function(f"document.querySelector('main').dataset.shown === {hash_!r}")


def _step_is(page: Any, step: str, state: str) -> None:
    page.wait_for_function(
        f"document.querySelector('.node[data-step=\"{step}\"]')?.dataset.state === {state!r}"
    )


def _start_weather(page: Any, url: str, city: str) -> str:
    page.goto(f"{url}/#/workflows/weatherWorkflow")
    page.get_by_label("City").fill(city)
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/#/runs/weatherWorkflow/*")
    return str(page.url.rsplit("/", 1)[1])


def test_the_weather_graph_shows_its_steps_and_input_schema(
    page: Any, studio: Studio, screenshot: Callable[[str], Path]
) -> None:
    page.goto(f"{studio.url}/")
    page.get_by_role("link", name="weatherWorkflow").click()
    nodes = page.locator(".graph .node")
    nodes.first.wait_for()
    names = nodes.locator(".name").all_inner_texts()
    assert names == ["fetch-weather", "map", "Weather Agent"]
    agent = page.locator('.node[data-step="Weather Agent"]')
    assert agent.locator(".badge").inner_text() == "agent"
    page.get_by_text("Input schema").click()
    schema = page.locator("details.schema pre").inner_text()
    assert '"city"' in schema and '"required"' in schema
    assert page.get_by_label("City").is_visible()  # the form, from the same schema
    screenshot("workflow")


def test_other_shapes_are_drawn_parallel_branch_loop_foreach_nested(
    page: Any, studio: Studio
) -> None:
    for key, selector in [
        ("parallelWf", ".group.parallel"),
        ("branchWf", ".group.branch"),
        ("loopWf", ".group.loop"),
        ("foreachWf", ".group.foreach"),
        ("nestedWf", "details.nested"),
    ]:
        page.goto(f"{studio.url}/#/workflows/{key}")
        page.locator(selector).first.wait_for()
    # A nested workflow expands in place to its own steps.
    nested = page.locator("details.nested").first
    inner = nested.locator(".seq .node")
    assert not inner.first.is_visible()
    nested.locator("summary").click()
    assert inner.first.is_visible()


def test_a_run_from_the_form_streams_the_agents_tokens_while_the_model_answers(
    page: Any,
    studio: Studio,
    model: ModelServer,
    planner: GatedPlanner,
    screenshot: Callable[[str], Path],
) -> None:
    run_id = _start_weather(page, studio.url, "Oslo")
    text = page.locator('.agent-text[data-step="Weather Agent"]')
    head = "".join(GatedPlanner.WORDS[: GatedPlanner.HEAD])
    page.wait_for_function(
        "([el, head]) => el.textContent === head",
        arg=[text.element_handle(), head],
    )
    # On screen while the model is still answering: its stream has not ended.
    assert model.stream_endings == []
    assert page.locator("#run-status").get_attribute("data-status") == "running"
    assert page.locator('.node[data-step="fetch-weather"]').get_attribute("data-state") == (
        "success"
    )
    box = text.bounding_box()
    planner.release()
    _status_is(page, "success")
    assert text.text_content() == "".join(GatedPlanner.WORDS)
    assert text.bounding_box() == box  # the answer's box did not move or grow as tokens came
    stored = studio.run("weatherWorkflow", run_id)["snapshot"]
    assert stored["status"] == "success"
    assert stored["context"]["Weather Agent"]["output"]["text"] == text.text_content()
    usage = page.locator('.step-card[data-step="Weather Agent"] .usage').inner_text()
    assert "tokens" in usage and "gated-planner" in usage
    timeline = page.locator("#timeline")
    assert timeline.get_attribute("data-count") == str(_event_count(studio, run_id))
    screenshot("run")


def _event_count(studio: Studio, run_id: str, key: str = "weatherWorkflow") -> int:
    """How many events the server has stored for the run (read from its own SSE route)."""
    with studio.api.stream("GET", f"/api/workflows/{key}/runs/{run_id}/events") as r:
        return sum(1 for line in r.iter_lines() if line.startswith("id: "))


def test_resume_from_the_generated_form_finishes_a_suspended_run(page: Any, studio: Studio) -> None:
    page.goto(f"{studio.url}/#/workflows/approvalWf")
    page.get_by_label("Item").fill("lamp")
    page.get_by_role("button", name="Start run").click()
    _status_is(page, "suspended")
    _step_is(page, "approve", "suspended")
    form = page.locator("#resume-form")
    assert (
        "approval needed for LAMP" in page.locator('.step-card[data-step="approve"]').inner_text()
    )
    form.get_by_label("Approved").check()
    form.get_by_label("Approver").fill("ada")
    form.get_by_role("button", name="Resume").click()
    _status_is(page, "success")
    run_id = page.url.rsplit("/", 1)[1]
    stored = studio.run("approvalWf", run_id)["snapshot"]
    assert stored["status"] == "success"
    assert stored["result"] == {"message": "LAMP approved=true by ada"}


def test_a_bad_resume_value_is_refused_in_the_page_and_nothing_is_sent(
    page: Any, studio: Studio
) -> None:
    page.goto(f"{studio.url}/#/workflows/approvalWf")
    page.get_by_label("Item").fill("desk")
    page.get_by_role("button", name="Start run").click()
    _status_is(page, "suspended")
    form = page.locator("#resume-form")
    form.get_by_role("button", name="Resume").click()  # Approver is required
    assert "approver is required" in page.locator("#actions .error").inner_text()
    run_id = page.url.rsplit("/", 1)[1]
    assert studio.run("approvalWf", run_id)["snapshot"]["status"] == "suspended"


def test_cancel_stops_a_running_run(page: Any, studio: Studio) -> None:
    page.goto(f"{studio.url}/#/workflows/slowWf")
    page.get_by_label("Name").fill("forever")
    page.get_by_role("button", name="Start run").click()
    _step_is(page, "work", "running")
    page.get_by_role("button", name="Cancel run").click()
    _status_is(page, "canceled")
    run_id = page.url.rsplit("/", 1)[1]
    assert studio.run("slowWf", run_id)["snapshot"]["status"] == "canceled"
    assert page.get_by_role("button", name="Cancel run").count() == 0


def test_bad_input_in_the_start_form_is_refused_clearly(page: Any, studio: Studio) -> None:
    page.goto(f"{studio.url}/#/workflows/weatherWorkflow")
    page.get_by_role("checkbox", name="Raw JSON").check()
    page.get_by_label("JSON value").fill('{"city": ')
    page.get_by_role("button", name="Start run").click()
    assert "the JSON is invalid" in page.locator("#start-form .error").inner_text()
    page.get_by_label("JSON value").fill('{"town": "Oslo"}')
    page.get_by_role("button", name="Start run").click()
    page.locator("#start-form .error", has_text="inputData is invalid").wait_for()
    # The form's run was created (stored pending) and refused before it started.
    assert [r["snapshot"]["status"] for r in studio.runs("weatherWorkflow")] == ["pending"]


@pytest.fixture
def proxy(studio: Studio) -> Iterator[Proxy]:
    where = urlparse(studio.url)
    cut = Proxy((str(where.hostname), int(where.port or 80)))
    cut.start()
    yield cut
    cut.stop()


def test_a_dropped_connection_resumes_with_no_gap_and_no_repeat(
    page: Any, studio: Studio, planner: GatedPlanner, proxy: Proxy
) -> None:
    url = f"http://127.0.0.1:{proxy._listener.getsockname()[1]}"
    run_id = _start_weather(page, url, "Lima")
    text = page.locator('.agent-text[data-step="Weather Agent"]')
    head = "".join(GatedPlanner.WORDS[: GatedPlanner.HEAD])
    page.wait_for_function("([el, h]) => el.textContent === h", arg=[text.element_handle(), head])
    assert proxy.cut() > 0  # the network drops while the model is answering
    page.wait_for_function("document.querySelector('#link-state').dataset.state === 'resumed'")
    planner.release()
    _status_is(page, "success")
    # Every token once, in order: the answer on screen is the stored answer.
    assert text.text_content() == "".join(GatedPlanner.WORDS)
    count = int(page.locator("#timeline").get_attribute("data-count"))
    assert count == _event_count(studio, run_id)
    sent = b"".join(proxy.sent).lower()
    assert b"last-event-id: " in sent  # the reconnect said where it had got to


def test_the_runs_list_filters_by_workflow_and_status(
    page: Any, studio: Studio, planner: GatedPlanner, screenshot: Callable[[str], Path]
) -> None:
    planner.release()
    for item in ("cup", "pen"):
        studio.api.post("/api/workflows/approvalWf/start-async", json={"inputData": {"item": item}})
    weather = studio.api.post(
        "/api/workflows/weatherWorkflow/start-async", json={"inputData": {"city": "Rome"}}
    )
    assert weather.json()["status"] == "success"
    page.goto(f"{studio.url}/#/runs")
    rows = page.locator("tr[data-run]")
    page.wait_for_function("document.querySelectorAll('tr[data-run]').length === 3")
    screenshot("runs")
    page.get_by_label("Status").select_option("suspended")
    _shown(page, "#/runs?status=suspended")
    page.wait_for_function("document.querySelectorAll('tr[data-run]').length === 2")
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.status)")) == {"suspended"}
    page.get_by_label("Workflow").select_option("weatherWorkflow")
    _shown(page, "#/runs?workflow=weatherWorkflow&status=suspended")
    page.get_by_label("Status").select_option("")
    _shown(page, "#/runs?workflow=weatherWorkflow")
    page.wait_for_function("document.querySelectorAll('tr[data-run]').length === 1")
    assert rows.first.get_attribute("data-status") == "success"
    assert "page 1 of 1 (1 runs)" in page.locator(".pager").inner_text()


def test_the_token_field_unlocks_a_server_that_needs_one(page: Any, model: ModelServer) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": model.base_url}
    for studio in serve_studio(env, token="s3cret"):
        page.goto(f"{studio.url}/")
        notice = page.locator("#notice")
        notice.wait_for()
        assert "needs a bearer token" in notice.inner_text()
        page.get_by_label("Bearer token").fill("s3cret")
        page.get_by_role("button", name="Use").click()
        page.get_by_role("link", name="weatherWorkflow").wait_for()
        # Kept for the tab only (sessionStorage), never in localStorage.
        assert page.evaluate("sessionStorage.getItem('stepstream.token')") == "s3cret"
        assert page.evaluate("localStorage.length") == 0


@pytest.mark.parametrize("color_scheme", ["dark"], indirect=True)
def test_dark_mode_follows_the_system_setting(
    page: Any, studio: Studio, screenshot: Callable[[str], Path]
) -> None:
    page.goto(f"{studio.url}/#/workflows/weatherWorkflow")
    page.locator(".graph .node").first.wait_for()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 22, 26)"
    screenshot("workflow-dark")


def test_the_keyboard_reaches_the_form_and_starts_a_run(
    page: Any, studio: Studio, planner: GatedPlanner
) -> None:
    planner.release()
    page.goto(f"{studio.url}/#/workflows/weatherWorkflow")
    page.get_by_label("City").focus()
    page.keyboard.type("Kyiv")
    page.keyboard.press("Enter")
    _status_is(page, "success")
    page.locator("#timeline").focus()
    page.keyboard.press("Home")
    assert page.evaluate("document.querySelector('#timeline').scrollTop") == 0


def test_the_weather_example_is_servable_as_it_is_with_no_api_key(page: Any) -> None:
    # No OPENAI_API_KEY: the example's local model and weather source start on demand.
    for studio in serve_studio({}):
        run_id = _start_weather(page, studio.url, "Oslo")
        _status_is(page, "success")
        text = page.locator('.agent-text[data-step="Weather Agent"]').text_content()
        assert text.startswith("Activity plan for Oslo")
        stored = studio.run("weatherWorkflow", run_id)["snapshot"]
        assert stored["context"]["Weather Agent"]["output"]["text"] == text


def test_a_long_run_keeps_only_the_rows_in_view_in_the_timeline(page: Any) -> None:
    with ModelServer(bulk_responder(5000)) as bulk:
        env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": bulk.base_url}
        for studio in serve_studio(env):
            run_id = _start_weather(page, studio.url, "Bergen")
            _status_is(page, "success")
            timeline = page.locator("#timeline")
            page.wait_for_function(
                f"document.querySelector('#timeline').dataset.count === "
                f"'{_event_count(studio, run_id, 'weatherWorkflow')}'"
            )
            count = int(timeline.get_attribute("data-count"))
            assert count > 5000
            assert timeline.locator(".row").count() < 60  # in view and a margin, not 5,000
            timeline.focus()
            page.keyboard.press("Home")
            page.locator("#timeline .row .seq", has_text="#0").first.wait_for()
            page.keyboard.press("End")
            page.locator("#timeline .row .seq", has_text=f"#{count - 1}").wait_for()


def test_send_event_wakes_a_waiting_step(page: Any, studio: Studio) -> None:
    page.goto(f"{studio.url}/#/workflows/eventWf")
    page.get_by_label("Name").fill("parcel")
    page.get_by_role("button", name="Start run").click()
    _step_is(page, "ship", "waiting")
    name = page.get_by_label("Event", exact=True)
    assert name.input_value() == "approved"  # what the step waits for, filled in
    page.locator("#event-data").fill('{"by": "ada"}')
    page.get_by_role("button", name="Send event").click()
    _status_is(page, "success")
    _step_is(page, "ship", "success")
    run_id = page.url.rsplit("/", 1)[1]
    stored = studio.run("eventWf", run_id)["snapshot"]
    assert stored["result"] == {"name": "parcel", "event": {"by": "ada"}}


def test_time_travel_forks_a_run_that_shows_the_stored_steps_and_reruns_from_the_chosen_one(
    page: Any,
    studio: Studio,
    model: ModelServer,
    planner: GatedPlanner,
    screenshot: Callable[[str], Path],
) -> None:
    planner.release()  # the model answers at once
    source = _start_weather(page, studio.url, "Oslo")
    _status_is(page, "success")
    asked = len(model.requests)

    def fork_at(step: str, *, prompt: str | None = None, replay: bool = False) -> str:
        before = page.url
        card = page.locator(f'.step-card[data-step="{step}"]')
        card.get_by_role("button", name="Time travel from here").click()
        if prompt is not None:
            card.get_by_label(f"Input of {step}").fill(f'{{"prompt": "{prompt}"}}')
        if replay:
            card.get_by_role("checkbox", name="Replay recorded model answers").check()
        card.get_by_role("button", name="Fork run").click()
        page.wait_for_url(lambda url: url != before and "/#/runs/weatherWorkflow/" in url)
        fork = str(page.url.rsplit("/", 1)[1])
        _shown(page, f"#/runs/weatherWorkflow/{fork}")
        _status_is(page, "success")
        return fork

    fork = fork_at("Weather Agent", prompt="Plan a day in Lima")
    assert fork != source
    stored = page.locator('.step-card[data-step="fetch-weather"]')
    assert stored.get_attribute("data-origin") == "stored"  # copied, not executed again
    assert "stored" in stored.locator("summary").inner_text()
    assert page.locator('.node[data-step="fetch-weather"]').get_attribute("data-state") == (
        "success"
    )
    agent = page.locator('.step-card[data-step="Weather Agent"]')
    assert agent.get_attribute("data-origin") is None  # this one ran again
    assert page.locator("#forked-from").inner_text().startswith(f"Forked from run {source[:8]}")
    assert len(model.requests) == asked + 1
    assert "Plan a day in Lima" in json.dumps(model.requests[-1]["messages"])
    state = studio.run("weatherWorkflow", fork)["snapshot"]
    assert state["context"]["Weather Agent"]["payload"] == {"prompt": "Plan a day in Lima"}
    screenshot("time-travel")

    replayed = fork_at("Weather Agent", replay=True)  # the fork's answer, replayed
    assert len(model.requests) == asked + 1  # no model call
    # The run may have ended before the page opened: its answer arrives as its events replay.
    text = page.locator('.agent-text[data-step="Weather Agent"]')
    page.wait_for_function(
        "([el, text]) => el.textContent === text",
        arg=[text.element_handle(), "".join(GatedPlanner.WORDS)],
    )
    assert studio.run("weatherWorkflow", replayed)["snapshot"]["status"] == "success"
