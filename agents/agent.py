"""Agents on OpenAI-compatible chat-completions models, with tools and streaming."""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any

import httpx
import openai

from stepstream._loop import sync_twin, thread_runner
from stepstream.adapter import AgentChunk, Finish, StreamAdapter, TextDelta, ToolCallRequest
from stepstream.errors import ModelError, ModelStreamError, StepstreamError, describe_error
from stepstream.run_stream import iterate_sync
from stepstream.usage import Usage

from ._deadline import Deadline, DeadlineExceeded
from ._sse import DONE, SSEData
from .answers import AgentEvent, AgentResult, ToolResult
from .redaction import redact
from .retry import RetryPolicy
from .tools import Tool, _json_or_text, result_text

if TYPE_CHECKING:
    import pluggy

    from stepstream.plugin_manager import PluginManager
    from stepstream.steps import Step

__all__ = ["Agent", "AgentEvent", "AgentResult", "ToolResult"]

Sleep = Callable[[float], Awaitable[None]]

try:  # the SDK's own transport error classes (openai 3.x speaks httpx2), as its stream maps them
    from openai._httpx2 import request_exceptions, timeout_exceptions

    _TIMEOUTS: tuple[type[BaseException], ...] = timeout_exceptions()
    _REQUEST_ERRORS: tuple[type[BaseException], ...] = request_exceptions()
except ImportError:  # openai 2.x: httpx
    _TIMEOUTS, _REQUEST_ERRORS = (httpx.TimeoutException,), (httpx.RequestError,)


class Agent:
    """An LLM agent on any OpenAI-compatible chat-completions endpoint.

    :param name: The agent's name; an agent step's id in the stream (Mastra's).
    :param instructions: The system prompt.
    :param model: The model name, e.g. ``gpt-4o-mini``.
    :param tools: :class:`Tool` objects (or plain functions), or a mapping of the names the
        model sees to them.
    :param id: The ``toolCallId`` of the agent step's stream events (default: the name in
        camelCase, ``"Weather Agent"`` -> ``"weatherAgent"``).
    :param base_url: The endpoint; default ``OPENAI_BASE_URL`` or OpenAI's.
    :param api_key: The key; default ``OPENAI_API_KEY``.
    :param temperature: Sent when given.
    :param max_steps: Model turns at most in one answer (tool calls need more than one).
    :param retry: The retry policy of each model request (the SDK's own retries are off).
    :param timeout: Seconds for each request (connect, and each read).
    :param deadline: Seconds at most for each model response as a whole, from its request to
        its last chunk, retries and their waits included (a server trickling bytes passes
        every read timeout); time the stream's consumer holds it is not counted. ``None``
        waits for ever.
    :param tool_timeout: Seconds at most for each tool call; a tool taking longer gets the
        model an error result (a sync tool's thread cannot be stopped and runs on unseen).
        ``None`` waits for ever.
    :param plugin_manager: Where ``make_stream_adapter`` is asked when the agent runs on its
        own; in a workflow the run's manager is used.
    :param provider: The provider name given to ``make_stream_adapter``.
    """

    def __init__(
        self,
        name: str,
        instructions: str,
        model: str,
        *,
        tools: Iterable[Tool | Callable[..., Any]] | Mapping[str, Tool | Callable[..., Any]] = (),
        id: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = None,
        max_steps: int = 5,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        deadline: float | None = 600.0,
        tool_timeout: float | None = 120.0,
        plugin_manager: PluginManager | None = None,
        provider: str = "openai",
    ) -> None:
        self.name = name
        self.instructions = instructions
        self.model = model
        self.id = id or _camel(name)
        self.base_url = base_url
        self.api_key = api_key
        self.temperature = temperature
        self.max_steps = max_steps
        self.retry = retry or RetryPolicy()
        for name, seconds in (("deadline", deadline), ("tool_timeout", tool_timeout)):
            if seconds is not None and not seconds > 0:  # also refuses NaN
                raise ValueError(f"{name} must be a number of seconds > 0 or None, got {seconds!r}")
        self.timeout = timeout
        self.deadline = deadline
        self.tool_timeout = tool_timeout
        self.provider = provider
        self._plugin_manager = plugin_manager
        self.tools: dict[str, Tool] = _tools(tools)
        self._clients = _Clients()

    # -- public API -----------------------------------------------------------------------------

    def stream(
        self,
        prompt: str,
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> AsyncGenerator[AgentEvent, None]:
        """Stream the answer to ``prompt``: text deltas as they arrive, tool calls and results.

        Each model response ends with a :class:`~stepstream.adapter.Finish` carrying its
        reason, usage and model.

        :raises ModelError: when the model cannot be reached or answers with an error after
            the retries, or its response passes the ``deadline``;
            :class:`ModelStreamError` when it fails after part of the answer was streamed
            (never replayed), also a stream that ends without a ``finish_reason`` (cut
            short). Their messages and bodies never hold the API key or anything shaped
            like a credential.
        """
        return self._answer(prompt, plugin_manager or self.plugin_manager, sleep)

    async def generate(self, prompt: str) -> AgentResult:
        """Return the whole answer to ``prompt`` (tools run as the model asks)."""
        text: list[str] = []
        calls: list[ToolCallRequest] = []
        results: list[ToolResult] = []
        finish = Finish(reason=None)
        usage = Usage()
        async for event in self.stream(prompt):
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ToolCallRequest):
                calls.append(event)
            elif isinstance(event, ToolResult):
                results.append(event)
            elif isinstance(event, Finish):
                finish = event
                usage += Usage.from_provider(event.usage)
        return AgentResult("".join(text), calls, results, finish.reason, usage)

    generate_sync = sync_twin(generate)

    def stream_sync(self, prompt: str) -> Iterator[AgentEvent]:
        """The sync twin of :meth:`stream`, on this thread's event loop (shared with every
        sync twin of the thread, so the agent's client is reused across calls)."""
        yield from iterate_sync(thread_runner(), self.stream(prompt))

    def as_step(self, *, executor: str | None = None) -> Step[Any, Any]:
        """This agent as a workflow step (``step.from_agent(agent)``); ``executor`` names
        where it runs (``"ray"``: on a Ray worker, its deltas relayed to the run's stream)."""
        from .step import AgentStep

        return AgentStep(self, executor=executor)

    async def aclose(self) -> None:
        """Close this event loop's client of the agent (its connections); the next answer
        opens a new one. Clients of loops that end are closed as the loop shuts down."""
        await self._clients.close(asyncio.get_running_loop())

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for another process (a Ray worker): the standalone manager stays here; in a
        # workflow step the agent uses the run's manager anyway. Clients hold sockets.
        return {**self.__dict__, "_plugin_manager": None, "_clients": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._clients = _Clients()

    def __copy__(self) -> Agent:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)  # a copy in this process keeps its manager
        clone._clients = _Clients()  # and opens connections of its own
        return clone

    def __deepcopy__(self, memo: dict[int, Any]) -> Agent:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        manager = self._plugin_manager
        state = {**self.__dict__, "_plugin_manager": None, "_clients": None}
        clone.__dict__.update(copy.deepcopy(state, memo))
        clone._plugin_manager = manager  # shared, as a copy of a client would share it
        clone._clients = _Clients()
        return clone

    @property
    def plugin_manager(self) -> PluginManager:
        """The manager used when the agent runs on its own (made on first use)."""
        if self._plugin_manager is None:
            from stepstream.plugin_manager import get_plugin_manager

            self._plugin_manager = get_plugin_manager()
        return self._plugin_manager

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, model={self.model!r})"

    # -- the tool loop ----------------------------------------------------------------------------

    async def _answer(
        self, prompt: str, pm: pluggy.PluginManager, sleep: Sleep
    ) -> AsyncGenerator[AgentEvent, None]:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.instructions},
            {"role": "user", "content": prompt},
        ]
        client = await self._clients.get(self._client)
        for _ in range(self.max_steps):
            adapter = pm.hook.make_stream_adapter(provider=self.provider, model=self.model)
            if adapter is None:
                raise ModelError(f"no plugin makes a stream adapter for {self.provider!r}")
            calls: list[ToolCallRequest] = []
            text: list[str] = []
            async for chunk in self._turn(client, messages, adapter, sleep):
                if isinstance(chunk, ToolCallRequest):
                    calls.append(chunk)
                elif isinstance(chunk, TextDelta):
                    text.append(chunk.text)
                yield chunk
            if not calls:
                return
            messages.append(_assistant_message("".join(text), calls))
            for call in calls:
                result = await self._run_tool(call)
                yield result
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": result_text(result.result)}
                )
        raise ModelError(
            f"agent {self.name!r} was still calling tools after max_steps={self.max_steps} turns"
        )

    def _client(self) -> openai.AsyncOpenAI:
        try:
            return openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self.api_key, max_retries=0, timeout=self.timeout
            )
        except openai.OpenAIError as exc:
            raise ModelError(
                f"agent {self.name!r} cannot reach its model: {exc} "
                "(set OPENAI_API_KEY / OPENAI_BASE_URL or pass api_key= / base_url=)"
            ) from exc

    async def _turn(
        self,
        client: openai.AsyncOpenAI,
        messages: list[dict[str, Any]],
        adapter: StreamAdapter,
        sleep: Sleep,
    ) -> AsyncIterator[AgentChunk]:
        """One model request: retried until its first chunk arrives, never after."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.tools:
            request["tools"] = [t.schema() for t in self.tools.values()]
        if self.temperature is not None:
            request["temperature"] = self.temperature
        attempts = 0
        deadline = Deadline(self.deadline)
        secrets = (client.api_key, self.api_key)

        async def wait(seconds: float) -> None:
            await deadline.wait(sleep(seconds))

        try:
            try:
                async for attempt in self.retry.retrying(wait):
                    with attempt:
                        attempts += 1
                        # The SDK's raw streaming response: its client, auth, base URL and
                        # HTTP errors, without a pydantic model built per chunk.
                        opened = client.chat.completions.with_streaming_response.create(**request)
                        response = await deadline.wait(opened.__aenter__())
                        chunks = _chunks(response)
                        try:
                            first = await deadline.wait(anext(chunks))
                        except StopAsyncIteration:
                            first = None
                        except BaseException:
                            await opened.__aexit__(None, None, None)
                            raise
            except Exception as exc:
                error = _model_error(exc, attempts, streamed=False, secrets=secrets)
                raise error from _safe_cause(exc)
            try:
                if first is not None:
                    for out in adapter.feed(first):
                        yield out
                    while True:
                        try:
                            chunk = await deadline.wait(anext(chunks))
                        except StopAsyncIteration:
                            break
                        for out in adapter.feed(chunk):
                            yield out
                for out in adapter.finish():
                    if isinstance(out, Finish) and out.reason is None:
                        # No finish_reason (and so no [DONE] worth the name): the server or
                        # a proxy cut the answer short; its text must not pass for an answer.
                        raise ModelStreamError(
                            "the model's stream ended without a finish_reason: the answer "
                            "was cut short (not retried)",
                            attempts=attempts,
                        )
                    yield out
            except ModelError:
                raise
            except Exception as exc:
                error = _model_error(exc, attempts, streamed=True, secrets=secrets)
                raise error from _safe_cause(exc)
            finally:
                await chunks.aclose()
                await opened.__aexit__(None, None, None)
        finally:
            deadline.close()

    async def _run_tool(self, call: ToolCallRequest) -> ToolResult:
        args: Any = _json_or_text(call.arguments)
        found = self.tools.get(call.name)
        if found is None:
            return ToolResult(call.id, call.name, args, {"error": f"unknown tool {call.name!r}"})
        try:
            parsed = found.parse_arguments(call.arguments)
            if self.tool_timeout is None:
                result = await found.call(parsed)
            else:
                async with asyncio.timeout(self.tool_timeout) as scope:
                    result = await found.call(parsed)
        except TimeoutError as exc:
            if self.tool_timeout is None or not scope.expired():
                return ToolResult(call.id, call.name, args, {"error": describe_error(exc)})
            error = f"tool {call.name!r} took longer than its timeout of {self.tool_timeout:g}s"
            return ToolResult(call.id, call.name, args, {"error": error})
        except (StepstreamError, Exception) as exc:
            # The model gets the error and may recover; the stream shows it in tool-result.
            return ToolResult(call.id, call.name, args, {"error": describe_error(exc)})
        return ToolResult(call.id, call.name, args, result)


async def _chunks(response: Any) -> AsyncGenerator[Any, None]:
    """The chunks of one streamed chat completion as decoded JSON, up to ``[DONE]``.

    Errors are the SDK's: a broken connection is ``APIConnectionError`` (``APITimeoutError``
    for a read timeout), an error object in the stream is ``APIError`` with its body.
    """
    events = SSEData()
    request = response.http_request
    pieces = aiter(response.iter_bytes())
    try:
        async for piece in pieces:
            for data in events.feed(piece):
                if data is DONE:
                    async for _ in pieces:
                        pass  # the rest of the body, so that the connection is reused
                    return
                _raise_stream_error(data, request)
                yield data
        for data in events.close():
            if data is DONE:
                return
            _raise_stream_error(data, request)
            yield data
    except _TIMEOUTS as exc:
        raise openai.APITimeoutError(request=request) from exc
    except _REQUEST_ERRORS as exc:
        raise openai.APIConnectionError(request=request) from exc


def _raise_stream_error(data: Any, request: Any) -> None:
    # What the SDK's own stream does with an error object sent mid-stream.
    if isinstance(data, dict) and data.get("error"):
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else None
        if not message or not isinstance(message, str):
            message = "An error occurred during streaming"
        raise openai.APIError(message=message, request=request, body=error)


class _Clients:
    """An agent's ``AsyncOpenAI`` clients, one per event loop, reused across answers.

    A client's connections belong to the loop they were opened on, so each loop gets its
    own. Each is closed by :meth:`close` (``async with agent:``, ``agent.aclose()``) or, at
    the latest, as its loop shuts down: an async generator parked on the loop is finalized
    by ``loop.shutdown_asyncgens()`` (which ``asyncio.run`` and ``asyncio.Runner`` call), and
    it closes the client. Until then the client is held here and in ``_LIVE``, so that
    dropping the agent never leaves its sockets to the garbage collector (a ResourceWarning).
    """

    def __init__(self) -> None:
        self._by_loop: dict[asyncio.AbstractEventLoop, _Held] = {}

    async def get(self, make: Callable[[], openai.AsyncOpenAI]) -> openai.AsyncOpenAI:
        loop = asyncio.get_running_loop()
        held = self._by_loop.get(loop)
        if held is not None and not held.client.is_closed():
            return held.client
        held = _Held(make())
        held.closer = _close_at_shutdown(held, self._by_loop, loop)
        await anext(held.closer)  # now the loop knows it, and finalizes it at shutdown
        self._by_loop[loop] = held
        _LIVE.add(held)
        return held.client

    async def close(self, loop: asyncio.AbstractEventLoop) -> None:
        held = self._by_loop.get(loop)
        if held is not None and held.closer is not None:
            await held.closer.aclose()


class _Held:
    __slots__ = ("client", "closer")

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client
        self.closer: AsyncGenerator[None, None] | None = None


_LIVE: set[_Held] = set()
"""Every open client until it is closed (see :class:`_Clients`)."""


async def _close_at_shutdown(
    held: _Held, owner: dict[asyncio.AbstractEventLoop, _Held], loop: asyncio.AbstractEventLoop
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        try:
            await held.client.close()
        finally:
            _LIVE.discard(held)
            if owner.get(loop) is held:
                del owner[loop]


def _safe_cause(exc: Exception) -> Exception | None:
    """What a :class:`ModelError` may chain: not an error the server's body went into (its
    text would reach the stored traceback unredacted)."""
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError):
        return None
    return None if isinstance(exc, DeadlineExceeded) else exc


def _model_error(
    exc: Exception, attempts: int, *, streamed: bool, secrets: Iterable[str | None] = ()
) -> ModelError:
    """Describe a failed request or a broken stream as a :class:`ModelError`, with every
    credential the server may have echoed redacted."""
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, DeadlineExceeded):
        cls = ModelStreamError if streamed else ModelError
        return cls(str(exc), code="deadline_exceeded", attempts=attempts)
    body = exc.body if isinstance(exc, openai.APIError) and isinstance(exc.body, dict) else None
    status = getattr(exc, "status_code", None)
    message = (body or {}).get("message") or getattr(exc, "message", None) or str(exc)
    error_type = (body or {}).get("type") or getattr(exc, "type", None)
    code = (body or {}).get("code") or getattr(exc, "code", None)
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        cause = exc.__cause__ if isinstance(exc, openai.APIConnectionError) else exc
        message = "connection to the model failed"
        if cause is not None:
            message += f": {type(cause).__name__}: {cause}"
    elif not isinstance(exc, openai.APIError):
        message = f"{type(exc).__name__}: {exc}"
    where = "after part of the answer was streamed; not retried" if streamed else ""
    tries = f"after {attempts} attempts" if attempts > 1 else ""
    detail = ", ".join(s for s in (f"status {status}" if status else "", tries, where) if s)
    cls = ModelStreamError if streamed else ModelError
    return cls(
        redact(f"{message} ({detail})" if detail else str(message), secrets),
        status_code=status,
        error_type=redact(str(error_type), secrets) if error_type is not None else None,
        code=redact(str(code), secrets) if code is not None else None,
        attempts=attempts,
        body=redact(body, secrets),
    )


def _assistant_message(text: str, calls: list[ToolCallRequest]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ],
    }


def _camel(name: str) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    if not words:
        return name
    return words[0][0].lower() + words[0][1:] + "".join(w[0].upper() + w[1:] for w in words[1:])


def _tools(
    tools: Iterable[Tool | Callable[..., Any]] | Mapping[str, Tool | Callable[..., Any]],
) -> dict[str, Tool]:
    if isinstance(tools, Mapping):
        out = {}
        for key, value in tools.items():
            made = value if isinstance(value, Tool) else Tool(value)
            out[key] = Tool(made.fn, name=key, description=made.description)
        return out
    made_tools = [t if isinstance(t, Tool) else Tool(t) for t in tools]
    return {t.name: t for t in made_tools}
