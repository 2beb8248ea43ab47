"""stepstream: typed Python workflows with LLM-agent steps, streamed as Mastra's events.

Every stream event is first a pluggy hook call (:func:`hookspecs.on_event`); ``Run.stream()``
is the built-in ``stream`` plugin's queue. Start with :class:`Workflow` and :func:`step`.
"""

from __future__ import annotations

from importlib.metadata import version as _version

from . import events, hookspecs
from ._time_travel import time_travel
from .channel import EventChannel
from .context import RuntimeContext, StepContext
from .errors import (
    BudgetExceededError,
    ClientError,
    InputValidationError,
    ModelError,
    ModelStreamError,
    OutputValidationError,
    PluginError,
    PluginHookError,
    PluginLoadError,
    RealModelCallError,
    ReplayError,
    RunClaimedError,
    RunError,
    RunStateError,
    StepExecutionError,
    StepSerializationError,
    StepstreamError,
    StepTimeoutError,
    StorageError,
    StreamError,
    TimeTravelError,
    ValidationError,
    WorkflowDefinitionError,
)
from .events import Event
from .executor import LocalExecutor, StepExecutor
from .hookspecs import hookimpl
from .hub import Subscription
from .plugin_manager import PluginManager, get_plugin_manager
from .recovery import keep_recovering, recover_interrupted
from .result import StepRecord, WorkflowResult
from .run import Run, RunStream, SyncRunStream
from .steps import Step, clone_step, step
from .usage import Budget, Price, PriceTable, Usage
from .workflow import Workflow, clone_workflow

__all__ = [
    "Budget",
    "BudgetExceededError",
    "ClientError",
    "Event",
    "EventChannel",
    "InputValidationError",
    "LocalExecutor",
    "ModelError",
    "ModelStreamError",
    "OutputValidationError",
    "PluginError",
    "PluginHookError",
    "PluginLoadError",
    "PluginManager",
    "Price",
    "PriceTable",
    "RealModelCallError",
    "ReplayError",
    "Run",
    "RunClaimedError",
    "RunError",
    "RunStateError",
    "RunStream",
    "RuntimeContext",
    "Step",
    "StepContext",
    "StepExecutionError",
    "StepExecutor",
    "StepRecord",
    "StepSerializationError",
    "StepTimeoutError",
    "StepstreamError",
    "StorageError",
    "StreamError",
    "Subscription",
    "SyncRunStream",
    "TimeTravelError",
    "Usage",
    "ValidationError",
    "Workflow",
    "WorkflowDefinitionError",
    "WorkflowResult",
    "clone_step",
    "clone_workflow",
    "events",
    "get_plugin_manager",
    "hookimpl",
    "hookspecs",
    "keep_recovering",
    "recover_interrupted",
    "step",
    "time_travel",
]

# pyproject.toml holds the one version number; the installed package's metadata carries it.
__version__ = _version("stepstream")
