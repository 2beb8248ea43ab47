"""Mastra's ``describe('Suspend and Resume')`` (workflow.test.ts line 4566)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from stepstream import PluginManager, RunStateError, Step, StepContext, Workflow

from .expect import NUMBER, ok, steps

TONE = {"toneScore": {"score": 0.8}, "completenessScore": {"score": 0.7}}
IMPROVED_TONE = {"toneScore": {"score": 0.9}, "completenessScore": {"score": 0.8}}


def counted(step_id: str, value: Any, calls: Counter[str]) -> Step[Any, Any]:
    def execute(ctx: StepContext[Any]) -> Any:
        calls[step_id] += 1
        return value

    return Step(id=step_id, execute=execute)


def suspending_once(step_id: str, value: Any, calls: Counter[str]) -> Step[Any, Any]:
    """Suspends on its first call, returns ``value`` on the next (Mastra's
    ``mockImplementationOnce`` pair)."""

    async def execute(ctx: StepContext[Any]) -> Any:
        calls[step_id] += 1
        if calls[step_id] == 1:
            await ctx.suspend()
        return value

    return Step(id=step_id, execute=execute)


@pytest.mark.asyncio
async def test_should_return_the_correct_run_id(pm: PluginManager) -> None:
    """workflow.test.ts line 4574."""
    wf = Workflow(id="test-workflow").then(Step(id="step1", execute=lambda ctx: {})).commit()
    run = await wf.create_run(plugin_manager=pm)
    run2 = await wf.create_run(run_id=run.run_id)
    assert run.run_id and run2.run_id == run.run_id


@pytest.mark.asyncio
async def test_should_handle_basic_suspend_and_resume_flow(pm: PluginManager) -> None:
    """workflow.test.ts line 4598."""
    calls: Counter[str] = Counter()
    prompt_agent = suspending_once("promptAgent", {"modelOutput": "test output"}, calls)
    wf = (
        Workflow(id="test-workflow")
        .then(counted("getUserInput", {"userInput": "test input"}, calls))
        .then(prompt_agent)
        .then(counted("evaluateToneConsistency", TONE, calls))
        .then(counted("improveResponse", {"improvedOutput": "improved output"}, calls))
        .then(counted("evaluateImprovedResponse", IMPROVED_TONE, calls))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    suspended: list[Any] = []

    def on_transition(data: dict[str, Any]) -> None:
        current = data["payload"].get("currentStep", {})
        if current.get("id") == "promptAgent" and current.get("status") == "suspended":
            suspended.append(
                {"stepId": "promptAgent", "context": {"userInput": "test input for resumption"}}
            )

    run.watch(on_transition)
    initial = await run.start({"input": "test"})
    assert steps(initial)["promptAgent"]["status"] == "suspended"
    assert calls["promptAgent"] == 1
    [resume_data] = suspended
    resumed = await run.resume(step=prompt_agent, resume_data=resume_data)
    assert steps(resumed) == {
        "input": {"input": "test"},
        "getUserInput": ok({"input": "test"}, {"userInput": "test input"}),
        "promptAgent": ok(
            {"userInput": "test input"},
            {"modelOutput": "test output"},
            resumePayload=resume_data,
            resumedAt=NUMBER,
            suspendedAt=NUMBER,
        ),
        "evaluateToneConsistency": ok({"modelOutput": "test output"}, TONE),
        "improveResponse": ok(TONE, {"improvedOutput": "improved output"}),
        "evaluateImprovedResponse": ok({"improvedOutput": "improved output"}, IMPROVED_TONE),
    }


@pytest.mark.asyncio
async def test_should_handle_parallel_steps_with_conditional_suspend(pm: PluginManager) -> None:
    """workflow.test.ts line 4749 (resumed through a second ``create_run(run_id=...)``)."""
    calls: Counter[str] = Counter()

    async def intervene(ctx: StepContext[Any]) -> Any:
        calls["humanIntervention"] += 1
        if not (ctx.resume_data or {}).get("humanPrompt"):
            await ctx.suspend()
        return {"improvedOutput": "human intervention output"}

    human = Step(id="humanIntervention", execute=intervene)
    wf = (
        Workflow(id="test-workflow")
        .then(counted("getUserInput", {"userInput": "test input"}, calls))
        .then(counted("promptAgent", {"modelOutput": "test output"}, calls))
        .then(counted("evaluateToneConsistency", TONE, calls))
        .branch(
            [
                (lambda ctx: True, human),
                (lambda ctx: False, counted("explainResponse", {"improvedOutput": "x"}, calls)),
            ]
        )
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    initial = await run.start({"input": "test"})
    assert steps(initial)["humanIntervention"]["status"] == "suspended"
    assert "explainResponse" not in steps(initial)
    assert calls == {
        "getUserInput": 1,
        "promptAgent": 1,
        "evaluateToneConsistency": 1,
        "humanIntervention": 1,
    }
    run2 = await wf.create_run(run_id=run.run_id)
    prompt = {"humanPrompt": "What improvements would you suggest?"}
    resumed = await run2.resume(step=human, resume_data=prompt)
    assert calls["humanIntervention"] == 2 and calls["explainResponse"] == 0
    assert steps(resumed) == {
        "input": {"input": "test"},
        "getUserInput": ok({"input": "test"}, {"userInput": "test input"}),
        "promptAgent": ok({"userInput": "test input"}, {"modelOutput": "test output"}),
        "evaluateToneConsistency": ok({"modelOutput": "test output"}, TONE),
        "humanIntervention": ok(
            TONE,
            {"improvedOutput": "human intervention output"},
            resumePayload=prompt,
            resumedAt=NUMBER,
            suspendedAt=NUMBER,
        ),
    }


@pytest.mark.asyncio
async def test_should_handle_complex_workflow_with_multiple_suspends(pm: PluginManager) -> None:
    """workflow.test.ts line 4903 (Mastra resumes from inside a watcher; here the resumes
    follow each other: the run suspends at improveResponse, then at humanIntervention)."""
    calls: Counter[str] = Counter()
    evaluate_tone = counted("evaluateToneConsistency", TONE, calls)
    improve = suspending_once("improveResponse", {"improvedOutput": "improved output"}, calls)
    human = suspending_once(
        "humanIntervention", {"improvedOutput": "human intervention output"}, calls
    )
    wf = (
        Workflow(id="test-workflow")
        .then(counted("getUserInput", {"userInput": "test input"}, calls))
        .then(counted("promptAgent", {"modelOutput": "test output"}, calls))
        .then(evaluate_tone)
        .then(improve)
        .then(counted("evaluateImprovedResponse", IMPROVED_TONE, calls))
        .map(
            {
                "toneScore": {"step": evaluate_tone, "path": "toneScore"},
                "completenessScore": {"step": evaluate_tone, "path": "completenessScore"},
            }
        )
        .parallel(
            [human, counted("explainResponse", {"improvedOutput": "explanation output"}, calls)]
        )
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    initial = await run.start({"input": "test"})
    assert steps(initial)["improveResponse"]["status"] == "suspended"
    improved = await run.resume(step=improve, resume_data=steps(initial))
    assert steps(improved)["humanIntervention"]["status"] == "suspended"
    assert steps(improved)["improveResponse"]["status"] == "success"
    assert steps(improved)["evaluateImprovedResponse"]["status"] == "success"
    result = await run.resume(
        step=human, resume_data={"humanPrompt": "What improvements would you suggest?"}
    )
    assert calls["humanIntervention"] == 2 and calls["explainResponse"] == 1
    wire = steps(result)
    assert wire["input"] == {"input": "test"}
    for step_id, output in {
        "getUserInput": {"userInput": "test input"},
        "promptAgent": {"modelOutput": "test output"},
        "evaluateToneConsistency": TONE,
        "improveResponse": {"improvedOutput": "improved output"},
        "evaluateImprovedResponse": IMPROVED_TONE,
        "humanIntervention": {"improvedOutput": "human intervention output"},
    }.items():
        assert (wire[step_id]["status"], wire[step_id]["output"]) == ("success", output)


@pytest.mark.asyncio
async def test_should_handle_basic_suspend_and_resume_flow_with_async_await_syntax(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 5105."""
    calls: Counter[str] = Counter()

    async def prompt(ctx: StepContext[Any]) -> Any:
        calls["promptAgent"] += 1
        if calls["promptAgent"] == 1:
            return await ctx.suspend({"testPayload": "hello"})  # type: ignore[func-returns-value]
        return {"modelOutput": "test output"}

    wf = (
        Workflow(id="test-workflow")
        .then(counted("getUserInput", {"userInput": "test input"}, calls))
        .then(Step(id="promptAgent", execute=prompt))
        .then(counted("evaluateToneConsistency", TONE, calls))
        .then(suspending_once("improveResponse", {"improvedOutput": "improved output"}, calls))
        .then(counted("evaluateImprovedResponse", IMPROVED_TONE, calls))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    initial = await run.start({"input": "test"})
    assert calls["promptAgent"] == 1
    assert steps(initial) == {
        "input": {"input": "test"},
        "getUserInput": ok({"input": "test"}, {"userInput": "test input"}),
        "promptAgent": {
            "status": "suspended",
            "payload": {"userInput": "test input"},
            "suspendPayload": {"testPayload": "hello"},
            "startedAt": NUMBER,
            "suspendedAt": NUMBER,
        },
    }
    new_ctx = {"userInput": "test input for resumption"}
    first = await run.resume(step="promptAgent", resume_data=new_ctx)
    assert steps(first)["promptAgent"] == ok(
        {"userInput": "test input"},
        {"modelOutput": "test output"},
        suspendPayload={"testPayload": "hello"},
        resumePayload=new_ctx,
        suspendedAt=NUMBER,
        resumedAt=NUMBER,
    )
    assert steps(first)["improveResponse"]["status"] == "suspended"
    second = await run.resume(step="improveResponse", resume_data={"toneScore": {"score": 0.8}})
    assert second.status == "success"
    assert steps(second)["evaluateImprovedResponse"] == ok(
        {"improvedOutput": "improved output"}, IMPROVED_TONE
    )


def _responses_workflow() -> tuple[Workflow, Counter[str]]:
    calls: Counter[str] = Counter()

    async def prompt(ctx: StepContext[Any]) -> Any:
        calls["promptAgent"] += 1
        responses = ctx.runtime_context.get("responses") or []
        if not ctx.resume_data:
            ctx.runtime_context.set("responses", [*responses, "first message"])
            ctx.suspend({"testPayload": "hello"})
        ctx.runtime_context.set("responses", [*responses, "promptAgentAction"])
        return None

    wf = (
        Workflow(id="test-workflow")
        .then(counted("getUserInput", {"userInput": "test input"}, calls))
        .then(Step(id="promptAgent", execute=prompt))
        .then(
            Step(
                id="runtimeContextAction", execute=lambda ctx: ctx.runtime_context.get("responses")
            )
        )
        .commit()
    )
    return wf, calls


@pytest.mark.asyncio
async def test_should_work_with_runtime_context_bug_4442(pm: PluginManager) -> None:
    """workflow.test.ts line 5338."""
    wf, calls = _responses_workflow()
    run = await wf.create_run(plugin_manager=pm)
    assert steps(await run.start({"input": "test"}))["promptAgent"]["status"] == "suspended"
    assert calls["promptAgent"] == 1
    resumed = await run.resume(
        step="promptAgent", resume_data={"userInput": "test input for resumption"}
    )
    assert calls["promptAgent"] == 2
    record = steps(resumed)["runtimeContextAction"]
    assert record["status"] == "success"
    assert record["output"] == ["first message", "promptAgentAction"]


@pytest.mark.asyncio
async def test_should_work_with_custom_runtime_context_bug_4442(pm: PluginManager) -> None:
    """workflow.test.ts line 5406."""
    from stepstream import RuntimeContext

    wf, calls = _responses_workflow()
    run = await wf.create_run(plugin_manager=pm)
    runtime_context = RuntimeContext()
    assert (await run.start({"input": "test"}, runtime_context)).status == "suspended"
    assert runtime_context.get("responses") == ["first message"]
    resumed = await run.resume(
        step="promptAgent",
        resume_data={"userInput": "test input for resumption"},
        runtime_context=runtime_context,
    )
    assert calls["promptAgent"] == 2
    assert steps(resumed)["runtimeContextAction"]["output"] == [
        "first message",
        "promptAgentAction",
    ]


@pytest.mark.asyncio
async def test_should_handle_basic_suspend_and_resume_in_a_dountil_workflow(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 5476."""

    async def resume_step(ctx: StepContext[Any]) -> Any:
        final = ((ctx.resume_data or {}).get("value") or 0) + ctx.input_data["value"]
        if not (ctx.resume_data or {}).get("value") or final < 10:
            value = ctx.input_data["value"]
            ctx.suspend({"message": f"Please provide additional information. now value is {value}"})
        return {"value": final}

    inner = (
        Workflow(id="simple-resume-workflow")
        .then(Step(id="increment", execute=lambda ctx: {"value": ctx.input_data["value"] + 1}))
        .then(Step(id="resume", execute=resume_step))
        .commit()
    )
    wf = (
        Workflow(id="dowhile-workflow")
        .dountil(inner, lambda ctx: ctx.input_data["value"] >= 10)
        .then(Step(id="final", execute=lambda ctx: {"value": ctx.input_data["value"]}))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    result = await run.start({"value": 0})
    assert steps(result)["simple-resume-workflow"]["status"] == "suspended"
    resumed = await run.resume(step=["simple-resume-workflow", "resume"], resume_data={"value": 2})
    assert steps(resumed)["simple-resume-workflow"]["status"] == "suspended"
    last = await run.resume(step=[inner, "resume"], resume_data={"value": 21})
    assert steps(last)["simple-resume-workflow"]["status"] == "success"


@pytest.mark.asyncio
async def test_should_handle_basic_suspend_and_resume_in_nested_dountil_workflow_bug_5650(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 5570."""
    init_values: list[Any] = []

    async def increment(ctx: StepContext[Any]) -> Any:
        amount = (ctx.resume_data or {}).get("amountToIncrementBy")
        if not amount:
            ctx.suspend({"optionsToIncrementBy": [1, 2, 3]})
        return {"value": ctx.input_data["value"] + amount}

    def resume_step(ctx: StepContext[Any]) -> Any:
        init_values.append(ctx.get_init_data()["value"])
        return {"value": ctx.input_data["value"]}

    inner = (
        Workflow(id="simple-resume-workflow")
        .then(Step(id="increment", execute=increment))
        .then(Step(id="resume", execute=resume_step))
        .commit()
    )
    wf = (
        Workflow(id="dowhile-workflow")
        .dountil(inner, lambda ctx: ctx.input_data["value"] >= 10)
        .then(Step(id="final", execute=lambda ctx: {"value": ctx.input_data["value"]}))
        .commit()
    )
    run = await wf.create_run(plugin_manager=pm)
    assert steps(await run.start({"value": 2}))["simple-resume-workflow"]["status"] == "suspended"
    resumed = await run.resume(
        step=["simple-resume-workflow", "increment"], resume_data={"amountToIncrementBy": 2}
    )
    assert steps(resumed)["simple-resume-workflow"]["status"] == "success"
    assert init_values == [2, 4, 6, 8]  # each iteration's input is the previous output


def _increment_workflow(suspend_at_resume: bool) -> Workflow:
    async def resume_step(ctx: StepContext[Any]) -> Any:
        if not ctx.resume_data:
            ctx.suspend({"message": "give a value"})
        return {"value": ctx.input_data["value"] + ctx.resume_data["value"]}

    wf = Workflow(id="increment-workflow").then(
        Step(id="increment", execute=lambda ctx: {"value": ctx.input_data["value"] + 1})
    )
    if suspend_at_resume:
        wf.then(Step(id="resume", execute=resume_step))
    return wf.then(
        Step(id="final", execute=lambda ctx: {"value": ctx.input_data["value"]})
    ).commit()


@pytest.mark.asyncio
async def test_should_throw_error_when_you_try_to_resume_a_workflow_that_is_not_suspended(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 5665 (Mastra's text, then our detail)."""
    run = await _increment_workflow(False).create_run(plugin_manager=pm)
    assert (await run.start({"value": 0})).status == "success"
    with pytest.raises(RunStateError, match=r"^This workflow run was not suspended: "):
        await run.resume(step=["increment"], resume_data={"value": 2})


@pytest.mark.asyncio
async def test_should_throw_error_when_you_try_to_resume_a_workflow_step_that_is_not_suspended(
    pm: PluginManager,
) -> None:
    """workflow.test.ts line 5718."""
    run = await _increment_workflow(True).create_run(plugin_manager=pm)
    assert (await run.start({"value": 0})).status == "suspended"
    with pytest.raises(RunStateError, match=r"^This workflow step was not suspended: "):
        await run.resume(step=["increment"], resume_data={"value": 2})
    assert (await run.resume(step=["resume"], resume_data={"value": 21})).status == "success"
