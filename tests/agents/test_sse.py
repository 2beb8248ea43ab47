"""Server-Sent Events bytes to parsed data (no sockets), as the agent's token path reads them."""

from __future__ import annotations

import pytest

from stepstream.agents._sse import DONE, SSEData


def test_events_split_across_pieces_and_lines_are_parsed_once_complete() -> None:
    sse = SSEData()
    assert sse.feed(b'data: {"a": 1}\n\ndata: {"b"') == [{"a": 1}]
    assert sse.feed(b": 2}\r\n") == []  # complete data, but its event has not ended yet
    assert sse.feed(b"\r\n: a comment\nevent: x\nid: 3\n\ndata: [DONE]\n\n") == [{"b": 2}, DONE]
    assert sse.close() == []


def test_several_data_lines_join_with_newlines_and_a_last_event_is_kept_at_close() -> None:
    sse = SSEData()
    assert sse.feed(b"data: [1,\ndata: 2]\n\ndata:3") == [[1, 2]]
    assert sse.close() == [3]


def test_broken_json_is_an_error_naming_where() -> None:
    with pytest.raises(ValueError, match="line 1 column"):
        SSEData().feed(b"data: {nope\n\n")
