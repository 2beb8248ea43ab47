"""What the lower layers need of a step: :class:`StepLike`, its id and its typed output.

Run state (:mod:`stepstream.result`) and step contexts (:mod:`stepstream.context`) sit below
:mod:`stepstream.steps` (a step's function takes a context); they name steps through this
protocol, which every :class:`~stepstream.steps.Step` satisfies, so that the output of
``ctx.get_step_result(step)`` and ``result.output_of(step)`` is typed as the step declares it.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

__all__ = ["StepLike"]

OutputT_co = TypeVar("OutputT_co", covariant=True)


class StepLike(Protocol[OutputT_co]):
    """A step as its readers see it: an id and a way to read back its output."""

    @property
    def id(self) -> str:
        """The step's id."""
        ...

    def parse_output(self, data: Any) -> OutputT_co:
        """Turn the step's stored JSON-form output back into its declared output type."""
        ...
