"""numba's disk cache for the backtest kernels, invalidated by every file they compile in.

numba stamps a cached kernel with a hash of its own source file only. A kernel compiled with
functions, NamedTuple layouts or record dtypes from another module keeps that module's old
machine code in its cache: after an edit there, the cache serves stale results, or, when a
layout changed, crashes the process. The backtest kernels compile in ``metrics``,
``simulate``, ``strategies``, ``records`` and ``indicators``, so their stamp hashes all five;
editing any of them recompiles the backtest kernels once.

Import this module before any ``@njit(cache=True)`` of those modules runs: numba picks a
kernel's cache locator when it is decorated.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from numba.core.caching import CacheImpl, InTreeCacheLocator, UserProvidedCacheLocator

__all__ = ["KERNEL_FILES", "SOURCE_FILES"]

_HERE = Path(__file__).resolve().parent
KERNEL_FILES = frozenset(
    str(_HERE / f"{name}.py") for name in ("metrics", "simulate", "strategies")
)
SOURCE_FILES = (*sorted(KERNEL_FILES), str(_HERE / "records.py"), str(_HERE / "indicators.py"))
_stamp: str | None = None


def _sources_stamp() -> str:
    """One hash over every source the backtest kernels compile in (read once per process)."""
    global _stamp
    if _stamp is None:
        digest = hashlib.sha256()
        for path in SOURCE_FILES:
            digest.update(path.encode())
            digest.update(Path(path).read_bytes())
        _stamp = digest.hexdigest()
    return _stamp


class _DependencyStamp:
    """Locator mixin: kernels of KERNEL_FILES only, stamped by all of SOURCE_FILES."""

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        if str(Path(py_file).resolve()) not in KERNEL_FILES:
            return None
        return super().from_function(py_func, py_file)  # type: ignore[misc]

    def get_source_stamp(self) -> str:
        return _sources_stamp()


class _UserDirLocator(_DependencyStamp, UserProvidedCacheLocator):
    """``NUMBA_CACHE_DIR`` set: cache there, as numba would."""


class _InTreeLocator(_DependencyStamp, InTreeCacheLocator):
    """Otherwise: ``engine/__pycache__``, as numba would."""


def _install() -> None:
    locators = CacheImpl._locator_classes
    for locator in (_InTreeLocator, _UserDirLocator):  # ends with _UserDirLocator first
        if locator not in locators:
            locators.insert(0, locator)


_install()
