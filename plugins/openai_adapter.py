"""The built-in ``openai-adapter`` plugin: answers ``make_stream_adapter`` for ``openai``."""

from __future__ import annotations

from stepstream.adapter import StreamAdapter
from stepstream.agents.openai_stream import OpenAIStreamAdapter
from stepstream.hookspecs import hookimpl

__all__ = ["OpenAIAdapterPlugin"]


class OpenAIAdapterPlugin:
    """Makes an :class:`OpenAIStreamAdapter` for every OpenAI-compatible model request."""

    @hookimpl(trylast=True)
    def make_stream_adapter(self, provider: str, model: str) -> StreamAdapter | None:
        """Answer for ``provider="openai"``; other plugins registered for it come first."""
        return OpenAIStreamAdapter() if provider == "openai" else None
