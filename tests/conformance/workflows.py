"""The Python counterparts of the Mastra conformance scripts that recorded ``traces/``.

Where a script sleeps to order completions, these steps wait on an ``asyncio.Event`` instead
(no timing in tests): the same completion order, deterministically.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from stepstream import StepContext, Workflow, step


class Value(BaseModel):
    value: float


class Doubled(BaseModel):
    doubled: float


class Text(BaseModel):
    text: str


def a_sequence() -> Workflow:
    @step(id="double")
    async def double(ctx: StepContext[Value]) -> Doubled:
        return Doubled(doubled=ctx.input_data.value * 2)

    @step(id="describe")
    async def describe(ctx: StepContext[Doubled]) -> Text:
        return Text(text=f"doubled={ctx.input_data.doubled:g}")

    return (
        Workflow(id="seq-wf", input_schema=Value, output_schema=Text)
        .then(double)
        .then(describe)
        .commit()
    )


class SlowResult(BaseModel):
    slowResult: float


class FastResult(BaseModel):
    fastResult: float


class Combined(BaseModel):
    slow: SlowResult
    fast: FastResult


class Sum(BaseModel):
    sum: float


def c_parallel() -> Workflow:
    fast_done = asyncio.Event()

    @step(id="slow")
    async def slow(ctx: StepContext[Value]) -> SlowResult:
        await fast_done.wait()  # Mastra's slow step sleeps 40 ms: it finishes after `fast`
        return SlowResult(slowResult=ctx.input_data.value + 1)

    @step(id="fast")
    async def fast(ctx: StepContext[Value]) -> FastResult:
        fast_done.set()
        return FastResult(fastResult=ctx.input_data.value * 10)

    @step(id="combine")
    async def combine(ctx: StepContext[Combined]) -> Sum:
        return Sum(sum=ctx.input_data.slow.slowResult + ctx.input_data.fast.fastResult)

    return (
        Workflow(id="parallel-wf", input_schema=Value, output_schema=Sum)
        .parallel([slow, fast])
        .then(combine)
        .commit()
    )


class Label(BaseModel):
    label: str


def d_branch() -> Workflow:
    @step(id="high")
    def high(ctx: StepContext[Value]) -> Label:
        return Label(label=f"high:{ctx.input_data.value:g}")

    @step(id="low")
    def low(ctx: StepContext[Value]) -> Label:
        return Label(label=f"low:{ctx.input_data.value:g}")

    return (
        Workflow(id="branch-wf", input_schema=Value, output_schema=Label)
        .branch(
            [
                (lambda ctx: ctx.input_data.value > 5, high),
                (lambda ctx: ctx.input_data.value <= 5, low),
            ]
        )
        .commit()
    )


def e_step_throws() -> Workflow:
    @step(id="ok")
    async def ok(ctx: StepContext[Value]) -> Value:
        return Value(value=ctx.input_data.value + 1)

    @step(id="boom")
    async def boom(ctx: StepContext[Value]) -> Value:
        raise RuntimeError("boom failed on purpose")

    @step(id="never")
    async def never(ctx: StepContext[Value]) -> Value:
        return ctx.input_data

    return (
        Workflow(id="throw-wf", input_schema=Value, output_schema=Value)
        .then(ok)
        .then(boom)
        .then(never)
        .commit()
    )


@step(id="increment")
async def increment(ctx: StepContext[Value]) -> Value:
    return Value(value=ctx.input_data.value + 1)


def f_dountil() -> Workflow:
    return (
        Workflow(id="dountil-wf", input_schema=Value, output_schema=Value)
        .dountil(increment, lambda ctx: ctx.input_data.value >= 3)
        .commit()
    )


def f_dowhile() -> Workflow:
    async def below_three(ctx: StepContext[Value]) -> bool:
        return ctx.input_data.value < 3

    return (
        Workflow(id="dowhile-wf", input_schema=Value, output_schema=Value)
        .dowhile(increment, below_three)
        .commit()
    )


class N(BaseModel):
    n: float


class Square(BaseModel):
    sq: float


def g_foreach() -> Workflow:
    @step(id="square")
    async def square(ctx: StepContext[N]) -> Square:
        return Square(sq=ctx.input_data.n * ctx.input_data.n)

    return Workflow(id="foreach-wf").foreach(square, concurrency=2).commit()


def h_nested() -> Workflow:
    @step(id="add-one")
    async def add_one(ctx: StepContext[Value]) -> Value:
        return Value(value=ctx.input_data.value + 1)

    @step(id="times-two")
    async def times_two(ctx: StepContext[Value]) -> Value:
        return Value(value=ctx.input_data.value * 2)

    @step(id="final")
    async def final(ctx: StepContext[Value]) -> Text:
        return Text(text=f"v={ctx.input_data.value:g}")

    inner = (
        Workflow(id="inner-wf", input_schema=Value, output_schema=Value)
        .then(add_one)
        .then(times_two)
        .commit()
    )
    return (
        Workflow(id="outer-wf", input_schema=Value, output_schema=Text)
        .then(add_one)
        .then(inner)
        .then(final)
        .commit()
    )


class Item(BaseModel):
    item: str


class Approval(BaseModel):
    approved: bool
    approver: str


class Approved(BaseModel):
    item: str
    approved: bool
    approver: str


class Reason(BaseModel):
    reason: str


class Message(BaseModel):
    message: str


def i_suspend_resume() -> Workflow:
    @step(id="prepare")
    async def prepare(ctx: StepContext[Item]) -> Item:
        return Item(item=ctx.input_data.item.upper())

    @step(id="approve", resume_schema=Approval, suspend_schema=Reason)
    async def approve(ctx: StepContext[Item]) -> Approved:
        if ctx.resume_data is None:
            await ctx.suspend({"reason": f"approval needed for {ctx.input_data.item}"})
        return Approved(
            item=ctx.input_data.item,
            approved=ctx.resume_data.approved,
            approver=ctx.resume_data.approver,
        )

    @step(id="done")
    async def done(ctx: StepContext[Approved]) -> Message:
        d = ctx.input_data
        return Message(message=f"{d.item} approved={str(d.approved).lower()} by {d.approver}")

    return (
        Workflow(id="approval-wf", input_schema=Item, output_schema=Message)
        .then(prepare)
        .then(approve)
        .then(done)
        .commit()
    )


class Name(BaseModel):
    name: str


class Greeting(BaseModel):
    greeting: str
    locale: str


def j_runtime_context() -> Workflow:
    @step(id="greet")
    async def greet(ctx: StepContext[Name]) -> Greeting:
        locale = ctx.runtime_context.get("locale") or "none"
        prefix = "Bonjour" if locale == "fr" else "Hello"
        return Greeting(greeting=f"{prefix}, {ctx.input_data.name}", locale=locale)

    return (
        Workflow(id="runtime-context-wf", input_schema=Name, output_schema=Greeting)
        .then(greet)
        .commit()
    )


def k_invalid_input() -> Workflow:
    @step(id="double")
    async def double(ctx: StepContext[Value]) -> Doubled:
        return Doubled(doubled=ctx.input_data.value * 2)

    return (
        Workflow(id="invalid-input-wf", input_schema=Value, output_schema=Doubled)
        .then(double)
        .commit()
    )


class UserId(BaseModel):
    userId: str


class User(BaseModel):
    name: str
    age: int


class UserOut(BaseModel):
    user: User


class FullName(BaseModel):
    fullName: str


class LabelAndId(BaseModel):
    label: str
    originalId: str


class Summary(BaseModel):
    summary: str


def l_map() -> Workflow:
    @step(id="get-user")
    async def get_user(ctx: StepContext[UserId]) -> UserOut:
        return UserOut(user=User(name=f"user-{ctx.input_data.userId}", age=36))

    @step(id="format-name")
    async def format_name(ctx: StepContext[FullName]) -> Label:
        return Label(label=f"[{ctx.input_data.fullName}]")

    @step(id="final")
    async def final(ctx: StepContext[LabelAndId]) -> Summary:
        return Summary(summary=f"{ctx.input_data.label} ({ctx.input_data.originalId})")

    wf = Workflow(id="map-wf", input_schema=UserId, output_schema=Summary)
    return (
        wf.then(get_user)
        .map(lambda ctx: {"fullName": ctx.input_data.user.name.upper()})
        .then(format_name)
        .map(
            {
                "label": {"step": format_name, "path": "label"},
                "originalId": {"init_data": wf, "path": "userId"},
            }
        )
        .then(final)
        .commit()
    )
