"""The "writing plugins" page matches the hookspecs, and its example plugin runs."""

from __future__ import annotations

import contextlib
import inspect
import io
from pathlib import Path
from typing import Any

import pytest

from stepstream import StepContext, Workflow, hookspecs, step

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def _specs() -> dict[str, Any]:
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "stepstream_spec")
    }


def test_every_hook_is_on_the_page_with_its_signature() -> None:
    text = DOC.read_text().replace("\\|", "|")
    for name, fn in _specs().items():
        signature = f"{name}{inspect.signature(fn)}".replace("'", "")
        assert f"`{signature}`" in text, f"docs/plugins.md lacks {signature}"
        firstresult = fn.stepstream_spec["firstresult"]
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}("))
        expected = (
            "propagates"
            if firstresult
            else ("logged only" if name == "on_plugin_error" else "isolated")
        )
        assert row.rstrip(" |").endswith(expected), row


@pytest.mark.asyncio
async def test_the_ten_line_example_plugin_works() -> None:
    code = DOC.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)

    @step(id="hello")
    async def hello(ctx: StepContext[Any]) -> Any:
        return {}

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run = (
            await Workflow(id="wf").then(hello).commit().create_run(plugin_manager=namespace["pm"])
        )
        await run.start({})
    assert out.getvalue() == "hello: success\n"
