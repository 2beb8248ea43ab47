"""The one exception tree of stepstream.

Every error stepstream raises derives from :class:`StepstreamError` and carries the context
needed to act on it (run id, step id, plugin, hook). Errors that wrap another exception chain
it with ``raise ... from``.

::

    StepstreamError
    ├── WorkflowDefinitionError      invalid graph, found at commit() (or when building it)
    ├── ValidationError              data does not match a schema
    │   ├── InputValidationError     workflow input or a step's input
    │   └── OutputValidationError    a step's output
    ├── StepExecutionError           a step raised; wraps the step's exception
    │   ├── StepTimeoutError         an attempt of a step took longer than its timeout
    │   └── StepSerializationError   a step cannot be sent to (or back from) its executor
    ├── ModelError                   a model call failed (after the retries, if retryable)
    │   ├── ModelStreamError         the model failed after tokens were streamed: not replayed
    │   └── ReplayError              a recorded model holds no answer for this call
    ├── PluginError                  a plugin misbehaved
    │   ├── PluginLoadError          a plugin failed to import or to register
    │   └── PluginHookError          a hook implementation raised (re-raised in strict mode)
    ├── BudgetExceededError          a run spent more tokens or cost than its budget allows
    ├── RunError                     a run was used wrongly
    │   ├── RunStateError            e.g. resume() of a run that is not suspended
    │   │   └── RunClaimedError      another execution holds the run (its lease is alive)
    │   ├── StreamError              Run.stream() cannot be served or is consumed twice
    │   └── TimeTravelError          a stored run cannot be forked at the step asked for
    ├── StorageError                 a durable run's data cannot be stored (or storage failed)
    ├── RealModelCallError           a test reached for a model off this machine (testing kit)
    └── ClientError                  stepstream.client: the server answered an error status
                                     (``status``) or could not be reached (``status`` None)

Failures inside a run are reported as data (a failed ``step-result`` and a failed
``WorkflowResult``); these exceptions appear there as ``"<ExceptionType>: <message>"``.
A canceled run is not an error either: as in Mastra, awaiting its result returns it with
status ``canceled`` (no exception is raised for it).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceededError",
    "ClientError",
    "InputValidationError",
    "ModelError",
    "ModelStreamError",
    "OutputValidationError",
    "PluginError",
    "PluginHookError",
    "PluginLoadError",
    "RealModelCallError",
    "ReplayError",
    "RunClaimedError",
    "RunError",
    "RunStateError",
    "StepExecutionError",
    "StepSerializationError",
    "StepTimeoutError",
    "StepstreamError",
    "StorageError",
    "StreamError",
    "TimeTravelError",
    "ValidationError",
    "WorkflowDefinitionError",
    "describe_error",
]


class StepstreamError(Exception):
    """The root of every error stepstream raises.

    Every error pickles with its attributes (keyword-only constructors included), so errors
    travel between processes, e.g. from a step run on Ray back to the run.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args), self.__dict__)


class WorkflowDefinitionError(StepstreamError):
    """A workflow graph is invalid: raised by the builder methods and by ``commit()``."""

    def __init__(self, message: str, *, workflow_id: str | None = None) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id


class ValidationError(StepstreamError):
    """Data did not match a pydantic schema; ``errors`` holds pydantic's error list."""

    def __init__(
        self,
        message: str,
        *,
        step_id: str | None = None,
        errors: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message)
        self.step_id = step_id
        self.errors = errors or []


class InputValidationError(ValidationError):
    """The workflow's input data or a step's input does not match its input schema."""


class OutputValidationError(ValidationError):
    """A step returned output that does not match its output schema."""


class StepExecutionError(StepstreamError):
    """A step raised; the original exception is ``__cause__``."""

    def __init__(self, message: str, *, run_id: str, step_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step_id = step_id


class ModelError(StepstreamError):
    """A call to a model failed; carries what the provider said.

    :ivar status_code: The HTTP status, when there was a response.
    :ivar error_type: The provider's error ``type`` (e.g. ``server_error``).
    :ivar code: The provider's error ``code``.
    :ivar attempts: How many requests were made (retries included).
    :ivar body: The provider's error object, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        attempts: int = 1,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_type = error_type
        self.code = code
        self.attempts = attempts
        self.body = body


class ModelStreamError(ModelError):
    """The model failed after part of its answer was streamed; the request is not replayed."""


class ReplayError(ModelError):
    """A recorded model (:mod:`stepstream.agents.recorded`) holds no answer for the agent
    and prompt asked for: the call differs from the recorded run's, so it is not made."""


class StepTimeoutError(StepExecutionError):
    """An attempt of a step took longer than the step's ``timeout``, or a ``wait_for_event``
    step waited longer than its own."""


class StepSerializationError(StepExecutionError):
    """A step cannot be sent to its executor's process (its function, input or run context
    does not pickle), or its output or error cannot be sent back."""


class PluginError(StepstreamError):
    """A plugin could not be loaded or one of its hook implementations raised."""

    def __init__(self, message: str, *, plugin: str | None = None, hook: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.hook = hook


class PluginLoadError(PluginError):
    """A plugin cannot be loaded or registered: an entry point failed to import (the message
    names it), or a plugin implements a hook that does not exist (a misspelled name: the
    message names the hook and the closest real one)."""


class PluginHookError(PluginError):
    """A hook implementation raised: re-raised only in strict mode, else reported."""


class BudgetExceededError(StepstreamError):
    """A model response took the run beyond its :class:`~stepstream.usage.Budget`.

    Raised inside the agent step whose response went over, which fails, and so the run.

    :ivar run_id: The run.
    :ivar step_id: The step whose response went over.
    """

    def __init__(self, message: str, *, run_id: str, step_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step_id = step_id


class RunError(StepstreamError):
    """A run was used in a way its state does not allow."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunStateError(RunError):
    """The run is not in a state that allows the call (resume a run that is not suspended...)."""


class RunClaimedError(RunStateError):
    """Another execution holds the run: a process (or another ``Run`` object) claimed it for
    a start, resume or recovery and its lease has not expired, or the run changed in storage
    since this ``Run`` last saw it.

    :ivar owner: Who holds the run (``host:pid:id``), when someone does.
    """

    def __init__(self, message: str, *, run_id: str | None = None, owner: str | None = None):
        super().__init__(message, run_id=run_id)
        self.owner = owner


class StreamError(RunError):
    """``Run.stream()`` cannot be served (no stream plugin) or was consumed twice."""


class TimeTravelError(RunError):
    """A stored run cannot be forked at ``step_id`` (:func:`stepstream.time_travel`): the
    step never ran in it, is not a top-level step, or the workflow's definition no longer
    matches the stored run (steps added, removed or reordered before that step).

    :ivar step_id: The step asked for.
    """

    def __init__(self, message: str, *, run_id: str | None = None, step_id: str) -> None:
        super().__init__(message, run_id=run_id)
        self.step_id = step_id


class StorageError(StepstreamError):
    """A durable run's data could not be stored: a value JSON cannot hold (``path`` says
    where), or the storage failed after its retries.

    :ivar run_id: The run, when known.
    :ivar step_id: The step whose data could not be stored, when one is to blame.
    :ivar path: Where in the value the culprit is (``output['when']``), for encoding errors.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        step_id: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step_id = step_id
        self.path = path


class RealModelCallError(StepstreamError):
    """A test asked a model that is not on this machine; raised by ``stepstream.testing``'s guard.

    :param url: The URL the OpenAI client was about to call.
    """

    def __init__(self, url: str) -> None:
        super().__init__(
            f"a test called a real model at {url}; point the client at the model_server "
            "fixture's base_url, or mark the test @pytest.mark.real_model to allow it"
        )
        self.url = url


class ClientError(StepstreamError):
    """A request of ``stepstream.client`` failed: the server answered ``status`` with
    ``{"error": message}``, or (``status`` None) it could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


def describe_error(exc: BaseException) -> str:
    """Return the wire form of an error: ``"<ExceptionType>: <message>"``."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _rebuild(cls: type[StepstreamError], args: tuple[Any, ...]) -> StepstreamError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    return error
