"""What an agent does with a model server that misbehaves: a stream cut short, a trickle, a
tool that never returns, credentials echoed back (real HTTP servers on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stepstream import ModelError, ModelStreamError, PluginManager, Workflow, step
from stepstream.adapter import Finish, TextDelta
from stepstream.agents import Agent, ToolResult, tool
from stepstream.agents.redaction import REDACTED, redact
from stepstream.storage.sqlite import SQLiteStorage
from stepstream.testing import (
    HTTPErrorReply,
    ModelServer,
    ReplySequence,
    TextReply,
    ToolCallReply,
)

from .misbehaving_model import misbehaving_model
from .test_agent import FAST, make_agent, run_agent_step

KEY = "sk-test-SECRET0123456789abcdef"


@pytest.mark.asyncio
async def test_a_stream_ending_without_finish_reason_fails_as_broken(pm: PluginManager) -> None:
    with misbehaving_model("truncated") as url:
        agent = Agent("Weather Agent", "i", "m", base_url=url, api_key="k", retry=FAST)
        events, state = await run_agent_step(agent, pm)
        with pytest.raises(ModelStreamError, match="without a finish_reason"):
            await agent.generate("Hi")
    assert state.status == "failed"
    assert state.error.startswith("ModelStreamError: the model's stream ended without")
    assert "cut short" in state.error
    # The text that did arrive stays in the stream; it is not taken as the answer.
    assert [e.args_text_delta for e in events if e.type == "tool-call-delta"] == ["Half"]
    assert [e.status for e in events if e.type == "step-result"] == ["failed"]


@pytest.mark.asyncio
async def test_a_trickling_server_is_cut_off_by_the_deadline(
    model_server: ModelServer, pm: PluginManager
) -> None:
    # Every chunk arrives well within the read timeout; only the deadline can end it.
    model_server.responder = lambda body: TextReply(["tok "] * 200, delay=0.05)
    agent = make_agent(model_server, timeout=5.0, deadline=0.3)
    events, state = await run_agent_step(agent, pm)
    assert state.status == "failed"
    assert state.error == (
        "ModelStreamError: the model's answer took longer than its deadline of 0.3s"
    )
    deltas = [e for e in events if e.type == "tool-call-delta"]
    assert 0 < len(deltas) < 200
    assert model_server.stream_ended.wait(5)
    assert model_server.stream_endings == ["client-gone"]


@pytest.mark.asyncio
async def test_retry_waits_count_against_the_deadline(model_server: ModelServer) -> None:
    # The server asks for a 30 s wait before a retry: the deadline cannot wait that out.
    busy = HTTPErrorReply(503, {"error": {"message": "busy"}}, {"Retry-After": "30"})
    model_server.responder = ReplySequence([busy, TextReply(["ok"])])
    agent = make_agent(model_server, deadline=0.2)
    with pytest.raises(ModelError, match=r"deadline of 0\.2s") as caught:
        await agent.generate("hi")
    assert not isinstance(caught.value, ModelStreamError)  # nothing was streamed
    assert caught.value.code == "deadline_exceeded"
    assert len(model_server.requests) == 1


@pytest.mark.asyncio
async def test_time_the_consumer_holds_the_stream_does_not_count(
    model_server: ModelServer,
) -> None:
    model_server.responder = lambda body: TextReply(["a", "b", "c", "d"])
    agent = make_agent(model_server, deadline=0.3)
    seen: list[str] = []
    async for event in agent.stream("hi"):
        if isinstance(event, TextDelta):
            seen.append(event.text)
            await asyncio.sleep(0.15)  # a slow reader: 0.6 s held in all, twice the deadline
        elif isinstance(event, Finish):
            assert event.reason == "stop"
    assert seen == ["a", "b", "c", "d"]


@pytest.mark.asyncio
async def test_a_tool_past_its_timeout_gives_the_model_an_error(
    model_server: ModelServer,
) -> None:
    never = asyncio.Event()

    @tool
    async def hang(city: str) -> str:
        """Never answers."""
        await never.wait()
        return city

    model_server.responder = ReplySequence(
        [ToolCallReply("hang", ['{"city":', '"Oslo"}']), TextReply(["gave up"])]
    )
    agent = make_agent(model_server, tools=[hang], tool_timeout=0.1)
    results = [e async for e in agent.stream("hi") if isinstance(e, ToolResult)]
    assert [r.result for r in results] == [
        {"error": "tool 'hang' took longer than its timeout of 0.1s"}
    ]
    sent_back = model_server.requests[1]["messages"][-1]
    assert sent_back["role"] == "tool" and "took longer than its timeout" in sent_back["content"]


@pytest.mark.asyncio
@pytest.mark.parametrize("behaviour", ["echo-auth-401", "echo-auth-midstream"])
async def test_an_echoed_key_reaches_no_event_state_or_database(
    behaviour: Any, pm: PluginManager, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    with misbehaving_model(behaviour) as url:
        agent = Agent("Weather Agent", "i", "m", base_url=url, api_key=KEY, retry=FAST)
        wf = Workflow(id="wf", storage=SQLiteStorage(db)).then(step.from_agent(agent)).commit()
        run = await wf.create_run(plugin_manager=pm)
        stream = run.stream(input_data={"prompt": "hi"})
        events = [e async for e in stream]
        state = await stream.get_workflow_state()
    assert state.status == "failed"
    errors = [e.error for e in events if e.type == "error"]
    assert len(errors) == 1
    seen = repr([e.to_wire() for e in events]) + repr(state.to_wire()) + repr(state.steps)
    assert KEY not in seen and "SECRET" not in seen
    assert REDACTED in str(errors[0])
    assert state.error is not None and REDACTED in state.error
    record = state.steps["Weather Agent"]
    assert record.error_detail is not None and KEY not in record.error_detail
    # The message keeps what is useful.
    assert ("invalid credentials" if behaviour == "echo-auth-401" else "upstream rejected") in (
        state.error
    )
    await wf.storage.close()  # type: ignore[union-attr]
    stored = db.read_bytes()
    for suffix in ("-wal", "-journal"):
        extra = db.with_name(db.name + suffix)
        stored += extra.read_bytes() if extra.exists() else b""
    assert KEY.encode() not in stored and b"SECRET" not in stored
    again = SQLiteStorage(db)
    try:
        assert len(await again.read_events(run.run_id)) == len(events)  # all of it was stored
    finally:
        await again.close()


@pytest.mark.parametrize(
    "bad", [{"deadline": 0}, {"deadline": -1.0}, {"tool_timeout": float("nan")}]
)
def test_deadlines_must_be_positive(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must be a number of seconds > 0 or None"):
        Agent("a", "i", "m", api_key="k", **bad)  # type: ignore[arg-type]
    Agent("a", "i", "m", api_key="k", deadline=None, tool_timeout=None)  # waiting for ever


def test_redact_removes_keys_tokens_and_credential_fields() -> None:
    text = (
        "Authorization: Bearer abc.def-123 api_key=xyz789 "
        "key sk-proj-abcdefghijkl, secret mine-123 and password: hunter22"
    )
    out = redact(text, ["mine-123"])
    for secret in ("abc.def-123", "xyz789", "sk-proj-abcdefghijkl", "mine-123", "hunter22"):
        assert secret not in out
    assert out.startswith("Authorization: ")
    assert redact({"error": {"Authorization": "Basic Zm9vOmJhcg==", "n": 3}}) == {
        "error": {"Authorization": REDACTED, "n": 3}
    }
    assert redact(["plain words stay"], ["ab"]) == ["plain words stay"]  # too short to be a key
