"""numba's disk cache for every engine kernel, invalidated by every engine file it compiles in.

numba stamps a cached kernel with a hash of its own source file only. A kernel compiled with
functions, intrinsics, constants, NamedTuple layouts or record dtypes from another module keeps
that module's old machine code in its cache: after an edit there, the cache serves stale
results or, when a layout changed, crashes the process (a ``simulate_nb`` cache once outlived a
``metrics.py`` edit that way). So every kernel module of ``engine`` is stamped by the hash of
the engine source files it imports, directly or through other engine modules: editing
``engine/_ryu.py`` recompiles the ILP kernels of ``engine/_ilp_nb.py`` once, and leaves the
backtest kernels alone.

The imports are read from the source text (``from engine.x import ...``, ``from engine import
x``, ``import engine.x``), without executing anything; imports under a top-level
``if TYPE_CHECKING:`` are left out, since nothing compiled depends on them. The import graph
and the hashes are computed the first time a kernel of a module is looked up in the cache,
once per process.

Import this module before any ``@njit(cache=True)`` of a module runs: numba picks a kernel's
cache locator when the kernel is decorated. ``tests/engine/test_cache.py`` checks that every
kernel module does.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

from numba.core.caching import CacheImpl, InTreeCacheLocator, UserProvidedCacheLocator

__all__ = ["ENGINE_DIR", "engine_imports", "module_sources", "source_stamp"]

ENGINE_DIR = Path(__file__).resolve().parent

_TYPE_CHECKING_BLOCK = re.compile(
    rb"^if TYPE_CHECKING:[ \t]*\r?\n(?:(?:[ \t]+[^\n]*)?\r?\n)*", re.MULTILINE
)
_FROM_ENGINE = re.compile(
    rb"^[ \t]*from[ \t]+engine((?:\.\w+)?)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.MULTILINE
)
_IMPORT_ENGINE = re.compile(rb"^[ \t]*import[ \t]+([^\n]*)", re.MULTILINE)
_DOTTED = re.compile(rb"\bengine\.(\w+)")
_NAME = re.compile(rb"\b\w+\b")


@cache
def _source(name: str) -> bytes:
    return (ENGINE_DIR / f"{name}.py").read_bytes()


def _is_module(name: str) -> bool:
    return (ENGINE_DIR / f"{name}.py").is_file()


@cache
def engine_imports(name: str) -> frozenset[str]:
    """The engine modules that module ``engine.<name>`` imports directly (its source text)."""
    text = _TYPE_CHECKING_BLOCK.sub(b"", _source(name))
    found: set[str] = set()
    for module, names in _FROM_ENGINE.findall(text):
        if module:  # from engine.x import a, b
            found.add(module[1:].decode())
        else:  # from engine import x, y: the names that are modules
            found.update(n.decode() for n in _NAME.findall(names.split(b"#")[0]))
    for names in _IMPORT_ENGINE.findall(text):
        found.update(m.decode() for m in _DOTTED.findall(names.split(b"#")[0]))
    return frozenset(m for m in found if m != name and _is_module(m))


@cache
def module_sources(name: str) -> tuple[str, ...]:
    """``engine.<name>`` and every engine module it imports, directly or not, sorted."""
    seen = {name}
    todo = [name]
    while todo:
        for dep in engine_imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return tuple(sorted(seen))


@cache
def source_stamp(name: str) -> str:
    """One hash over the sources of ``module_sources(name)``: the stamp of its kernels."""
    digest = hashlib.sha256()
    for dep in module_sources(name):
        source = _source(dep)
        digest.update(f"{dep}.py {len(source)}\n".encode())
        digest.update(source)
    return digest.hexdigest()


class _DependencyStamp:
    """Locator mixin: kernels defined in engine/*.py only, stamped by their module's sources."""

    _module: str

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        path = Path(py_file).resolve()
        if path.parent != ENGINE_DIR or path.suffix != ".py":
            return None
        self = super().from_function(py_func, py_file)  # type: ignore[misc]
        if self is not None:
            self._module = path.stem
        return self

    def get_source_stamp(self) -> str:
        return source_stamp(self._module)


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
