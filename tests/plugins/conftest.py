"""Fixtures for plugin tests: the agents' real model server, for runs that use a model."""

from __future__ import annotations

from ..agents.conftest import model_server

__all__ = ["model_server"]
