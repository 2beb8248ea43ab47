"""stepstream's built-in plugins: ordinary plugins using only public hooks, blockable by name."""

from __future__ import annotations

__all__: list[str] = []
