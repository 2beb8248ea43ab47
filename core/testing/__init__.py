"""The testing kit: what stepstream's own tests use, for testing your workflows.

Installed with stepstream, it is also a pytest plugin (entry point ``pytest11``), so these
fixtures are there in every test without an import:

- ``model_server``: a :class:`ModelServer`, a local OpenAI-compatible chat-completions server
  on 127.0.0.1 that any OpenAI client can talk to. Set its ``responder`` to script replies:
  text (:class:`TextReply`, with ``usage``), tool calls (:class:`ToolCallReply`), and faults:
  an HTTP error such as 429 or 500 (:class:`HTTPErrorReply`), an error object mid-stream
  (:class:`ErrorMidStreamReply`), a dropped connection (:class:`DropReply`), a stall
  (:class:`StallReply`); :class:`ReplySequence` scripts one reply per attempt.
- ``recorder``: a :class:`Recorder` plugin keeping every event and lifecycle call.
- ``postgres_dsn``: an empty database on a throwaway PostgreSQL server
  (:class:`ThrowawayPostgres`), one per test session.
- A guard, on for every test: a call of the OpenAI SDK to a host other than this machine
  fails the test (:func:`block_real_models`); mark a test ``@pytest.mark.real_model`` to let
  it through, or set the ini option ``stepstream_block_real_models = false``.

:class:`WorkflowTestRunner` runs a workflow and returns a :class:`RunReport`: the events, their
counts by type, the result and the final state. Importing this package does not import pytest.
"""

from __future__ import annotations

from .guard import ModelCallGuard, block_real_models, is_local_host
from .model_server import ModelServer
from .postgres import ThrowawayPostgres, find_server_bindir
from .recorder import Recorder
from .replies import (
    MODEL,
    DropReply,
    ErrorMidStreamReply,
    HTTPErrorReply,
    Reply,
    ReplySequence,
    Responder,
    StallReply,
    TextReply,
    ToolCall,
    ToolCallReply,
    tokens,
)
from .responders import (
    FULL_TEXT,
    TEXT_CHUNKS,
    bulk_responder,
    mastra_mock_responder,
    planner_responder,
)
from .runner import RunReport, WorkflowTestRunner

__all__ = [
    "FULL_TEXT",
    "MODEL",
    "TEXT_CHUNKS",
    "DropReply",
    "ErrorMidStreamReply",
    "HTTPErrorReply",
    "ModelCallGuard",
    "ModelServer",
    "Recorder",
    "Reply",
    "ReplySequence",
    "Responder",
    "RunReport",
    "StallReply",
    "TextReply",
    "ThrowawayPostgres",
    "ToolCall",
    "ToolCallReply",
    "WorkflowTestRunner",
    "block_real_models",
    "bulk_responder",
    "find_server_bindir",
    "is_local_host",
    "mastra_mock_responder",
    "planner_responder",
    "tokens",
]
