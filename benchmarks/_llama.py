"""LlamaIndex Workflows' side: ``Workflow``s of ``@step``s, consumed with
``handler.stream_events(expose_internal=True)``.

Its engine emits a ``StepStateChanged`` event when each step starts running and when it
stops, its closest equivalent of stepstream's ``step-start`` / ``step-finish``; they are
made whether or not they are exposed, so exposing them costs the consumer only its own
iterations. The stream ends with the ``StopEvent``. Each workflow instance is built once
(validation happens on its first run, before any timing) with ``timeout=None``.
"""

from __future__ import annotations

from typing import Any

from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StepStateChanged, StopEvent

from ._shapes import INPUT, Unit, expect, gate_step, openai_deltas


class Passed(Event):
    """Base of the sequence's events: the input, passed along."""

    x: Any


class Work(Event):
    """One fan-out branch's input."""

    i: int
    x: Any


class Done(Event):
    """One fan-out branch's output."""

    i: int
    x: Any


class Token(Event):
    """One text delta of the model's answer."""

    delta: str


async def _consume(wf: Workflow, internal: int, result: Any, what: str, **start: Any) -> None:
    handler = wf.run(**start)
    states = count = 0
    async for ev in handler.stream_events(expose_internal=True):
        count += 1
        if isinstance(ev, StepStateChanged):
            states += 1
    got = await handler
    expect(states == internal, f"llama-index {what}: {states}/{internal} step state events")
    expect(count == internal + 1, f"llama-index {what}: {count} items")  # + the StopEvent
    expect(got == result, f"llama-index {what}: result {got!r}")


def chain(steps: int, *, with_gate: bool = False) -> Workflow:
    """A workflow of ``steps`` free-function steps in sequence, ``StartEvent`` to
    ``StopEvent`` through ``steps - 1`` event classes of their own; with ``with_gate``, each
    step passes the current gate before passing the input on."""
    events: list[type[Event]] = [StartEvent]
    for i in range(1, steps):
        events.append(type(f"E{i}", (Passed,), {"__module__": __name__}))
    events.append(StopEvent)
    cls: type[Workflow] = type("Chain", (Workflow,), {"__module__": __name__})
    for i in range(steps):
        out = events[i + 1]
        is_first, last = i == 0, i == steps - 1

        async def body(
            ev: Any, out: type[Event] = out, is_first: bool = is_first, last: bool = last
        ) -> Any:
            if with_gate:
                await gate_step(is_first)
            return StopEvent(result=ev.x) if last else out(x=ev.x)

        body.__annotations__ = {"ev": events[i], "return": out}
        body.__name__ = body.__qualname__ = f"s{i}"
        step(workflow=cls)(body)
    return cls(timeout=None)


def seq(steps: int) -> Unit:
    """One run of a ``steps``-step chain, every streamed item counted."""
    wf = chain(steps)
    return lambda: _consume(wf, 2 * steps, INPUT, "seq", x=INPUT)


def fanout(width: int) -> Unit:
    """One run that fans out ``width`` events to one step (``num_workers=width``, so all
    run at once) and collects them with ``ctx.collect_events``."""

    class FanOut(Workflow):
        @step
        async def start(self, ctx: Context, ev: StartEvent) -> Work | None:
            for i in range(width):
                ctx.send_event(Work(i=i, x=ev.x))
            return None

        @step(num_workers=width)
        async def work(self, ev: Work) -> Done:
            return Done(i=ev.i, x=ev.x)

        @step
        async def collect(self, ctx: Context, ev: Done) -> StopEvent | None:
            done = ctx.collect_events(ev, [Done] * width)
            if done is None:
                return None
            return StopEvent(result={f"p{d.i}": d.x for d in done})

    wf = FanOut(timeout=None)
    result = {f"p{i}": INPUT for i in range(width)}
    # start once, work and collect once per branch: two state events each
    return lambda: _consume(wf, 2 * (1 + 2 * width), result, "fanout", x=INPUT)


def gated(steps: int) -> Unit:
    """One run of a ``steps``-step chain whose steps pass the current gate first."""
    wf = chain(steps, with_gate=True)
    return lambda: _consume(wf, 2 * steps, INPUT, "gated", x=INPUT)


def tokens(base_url: str, model: str, messages: list[Any], n: int, expected: str) -> Unit:
    """One step streaming the model's answer with the bare ``openai.AsyncOpenAI`` client,
    writing each text delta with ``ctx.write_event_to_stream(Token(...))``."""

    class Relay(Workflow):
        @step
        async def answer(self, ctx: Context, ev: StartEvent) -> StopEvent:
            parts: list[str] = []
            async for content in openai_deltas(base_url, model, messages):
                ctx.write_event_to_stream(Token(delta=content))
                parts.append(content)
            return StopEvent(result="".join(parts))

    wf = Relay(timeout=None)

    async def run() -> None:
        handler = wf.run(prompt="go")
        parts = [ev.delta async for ev in handler.stream_events() if isinstance(ev, Token)]
        got = await handler
        expect(len(parts) == n, f"llama-index: {len(parts)}/{n} tokens")
        expect("".join(parts) == expected and got == expected, "llama-index: the text differs")

    return run
