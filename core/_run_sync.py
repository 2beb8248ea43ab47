"""The sync twins of :class:`~stepstream.run.Run`'s async methods, for scripts and notebooks.

Each runs its async twin on a private event loop; a test keeps the signatures the same.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .run_stream import DEFAULT_BUFFER_SIZE, SyncRunStream

if TYPE_CHECKING:
    from ._scope import StepRef
    from .context import RuntimeContext
    from .result import WorkflowResult
    from .run_stream import RunStream


class SyncTwins:
    """Mixed into :class:`~stepstream.run.Run`, which provides the async originals."""

    if TYPE_CHECKING:

        async def start(
            self, input_data: Any = None, runtime_context: RuntimeContext | None = None
        ) -> WorkflowResult: ...

        def stream(
            self,
            input_data: Any = None,
            runtime_context: RuntimeContext | None = None,
            *,
            buffer_size: int = DEFAULT_BUFFER_SIZE,
            close_on_suspend: bool = False,
            after_seq: int | None = None,
        ) -> RunStream: ...

        async def resume(
            self,
            step: StepRef | None = None,
            resume_data: Any = None,
            runtime_context: RuntimeContext | None = None,
        ) -> WorkflowResult: ...

        async def cancel(self) -> WorkflowResult | None: ...

    def start_sync(
        self, input_data: Any = None, runtime_context: RuntimeContext | None = None
    ) -> WorkflowResult:
        """The sync twin of :meth:`start` (for scripts; not inside a running event loop)."""
        with asyncio.Runner() as runner:
            return runner.run(self.start(input_data, runtime_context))

    def stream_sync(
        self,
        input_data: Any = None,
        runtime_context: RuntimeContext | None = None,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        close_on_suspend: bool = True,
        after_seq: int | None = None,
    ) -> SyncRunStream:
        """The sync twin of :meth:`stream`; iterate it with a plain ``for``.

        It closes on suspend by default, since nothing else can resume the run meanwhile in
        the same thread.
        """
        return SyncRunStream(
            self.stream(
                input_data,
                runtime_context,
                buffer_size=buffer_size,
                close_on_suspend=close_on_suspend,
                after_seq=after_seq,
            )
        )

    def resume_sync(
        self,
        step: StepRef | None = None,
        resume_data: Any = None,
        runtime_context: RuntimeContext | None = None,
    ) -> WorkflowResult:
        """The sync twin of :meth:`resume`."""
        with asyncio.Runner() as runner:
            return runner.run(self.resume(step, resume_data, runtime_context))

    def cancel_sync(self) -> WorkflowResult | None:
        """The sync twin of :meth:`cancel`."""
        with asyncio.Runner() as runner:
            return runner.run(self.cancel())
