"""Bars a process loaded recently, bounded by bytes, most recently used kept."""

from __future__ import annotations

from typing import Any

import numpy as np


class BarsCache:
    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}

    def get(self, key: tuple[Any, ...]) -> dict[str, np.ndarray] | None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._entries[key] = found  # most recent last
        return found

    def put(self, key: tuple[Any, ...], bars: dict[str, np.ndarray]) -> None:
        self._entries[key] = bars
        while len(self._entries) > 1 and self.nbytes() > self.max_bytes:
            self._entries.pop(next(iter(self._entries)))

    def nbytes(self) -> int:
        return sum(a.nbytes for entry in self._entries.values() for a in entry.values())
