"""RuntimeContext: a typed MutableMapping with Mastra's method names as well."""

from __future__ import annotations

from collections.abc import MutableMapping

import pytest

from stepstream import RuntimeContext


def test_runtime_context_is_a_mutable_mapping() -> None:
    ctx = RuntimeContext({"locale": "fr", "user": "ada"})
    assert isinstance(ctx, MutableMapping)
    assert list(ctx.items()) == [("locale", "fr"), ("user", "ada")]
    assert list(ctx.keys()) == ["locale", "user"]
    assert list(ctx.values()) == ["fr", "ada"]
    ctx.update(tier="gold")
    assert ctx.pop("user") == "ada"
    assert ctx.setdefault("locale", "en") == "fr"
    del ctx["tier"]
    assert dict(ctx) == {"locale": "fr"}
    assert ctx == {"locale": "fr"}


def test_mastra_method_names_work_beside_the_mapping_ones() -> None:
    ctx = RuntimeContext()
    ctx.set("a", 1)
    assert ctx.has("a") and ctx.get("a") == 1 and ctx.get("b", 2) == 2
    assert ctx.delete("a") is True
    assert ctx.delete("a") is False
    assert len(ctx) == 0 and ctx.to_dict() == {}


def test_missing_keys_raise_key_error_naming_the_key() -> None:
    ctx = RuntimeContext()
    with pytest.raises(KeyError, match="nope"):
        ctx["nope"]
    with pytest.raises(KeyError, match="nope"):
        del ctx["nope"]
