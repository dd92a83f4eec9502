"""numba's disk cache for engine kernels: every kernel module is stamped by every engine file it
compiles in, so an edit to a helper module recompiles the kernels that use it, and only them."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numba.core.caching import UserProvidedCacheLocator
from numba.core.registry import CPUDispatcher

from engine import _cache

ENGINE = Path(_cache.__file__).resolve().parent
KERNEL_MODULES = sorted(
    p.stem for p in ENGINE.glob("*.py") if "cache=True" in p.read_text() and p.stem != "_cache"
)
INSTALL = "from engine import _cache"


def test_every_kernel_module_is_known() -> None:
    assert KERNEL_MODULES == [
        "_features_nb", "_features_reference_nb", "_ilp_nb", "_ilp_parse_nb", "_ryu", "downsample",
        "floor", "indicators", "live", "metrics", "simulate", "strategies", "sweep_threshold",
        "ticks",
    ]  # fmt: skip


def test_every_kernel_module_installs_the_locator_before_its_first_kernel() -> None:
    for name in KERNEL_MODULES:
        lines = (ENGINE / f"{name}.py").read_text().splitlines()
        install = next(i for i, line in enumerate(lines) if line.startswith(INSTALL))
        first_kernel = next(i for i, line in enumerate(lines) if line.startswith("@njit"))
        assert install < first_kernel, name


def test_every_cached_kernel_is_stamped_by_its_module_sources() -> None:
    checked = 0
    for name in KERNEL_MODULES:
        module = importlib.import_module(f"engine.{name}")
        for value in vars(module).values():
            if not isinstance(value, CPUDispatcher) or value.__module__ != module.__name__:
                continue
            impl = value._cache._impl  # NullCache has no _impl: a kernel without cache=True
            locator = impl.locator
            assert type(locator).__module__ == "engine._cache", (name, value.__name__)
            assert locator.get_source_stamp() == _cache.source_stamp(name)
            checked += 1
    assert checked > 100


def test_stamps_cover_the_imported_engine_files_and_no_others() -> None:
    expected = {
        "_features_nb": {"_cache", "_features_nb"},
        "_features_reference_nb": {"_cache", "_features_reference_nb", "indicators"},
        "_ilp_nb": {"_cache", "_ilp_nb", "_rawmem", "_ryu"},
        "_ilp_parse_nb": {"_cache", "_ilp_parse_nb", "_rawmem"},
        "_ryu": {"_cache", "_rawmem", "_ryu"},
        "downsample": {"_cache", "downsample"},
        "indicators": {"_cache", "indicators"},
        "live": {
            "_cache",
            "_rawmem",
            "indicators",
            "live",
            "metrics",
            "records",
            "sim_options",
            "simulate",
            "strategies",
            "sweep_threshold",
        },
        "metrics": {"_cache", "metrics", "records"},
        "simulate": {"_cache", "_rawmem", "indicators", "metrics", "records", "simulate"},
        "strategies": {
            "_cache",
            "_rawmem",
            "indicators",
            "metrics",
            "records",
            "simulate",
            "strategies",
            "sweep_threshold",
        },
        "sweep_threshold": {
            "_cache",
            "_rawmem",
            "indicators",
            "metrics",
            "records",
            "simulate",
            "sweep_threshold",
        },
        # ParamSpec comes from strategies under TYPE_CHECKING only: nothing compiled uses it.
        "floor": {"_cache", "floor", "metrics", "records"},
        "ticks": {"_cache", "metrics", "records", "ticks"},
    }
    assert {name: set(_cache.module_sources(name)) for name in KERNEL_MODULES} == expected
    assert len(set(map(_cache.source_stamp, KERNEL_MODULES))) == len(KERNEL_MODULES)


def test_imports_are_read_in_every_spelling(tmp_path: Path, monkeypatch: Any) -> None:
    files = {
        "a": "from engine import b, c  # noqa\nimport engine.d\nfrom engine.e import (\n    x,\n)\n"
        "if TYPE_CHECKING:\n    from engine.f import T\n\nimport numpy as np, engine.g as g\n",
        "b": "", "c": "", "d": "", "e": "", "f": "", "g": "from engine.a import y\n",
    }  # fmt: skip
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.setattr(_cache, "ENGINE_DIR", tmp_path)
    for fn in (_cache._source, _cache.engine_imports, _cache.module_sources):
        fn.cache_clear()
    try:
        assert _cache.engine_imports("a") == {"b", "c", "d", "e", "g"}
        assert _cache.module_sources("g") == ("a", "b", "c", "d", "e", "g")
    finally:
        for fn in (_cache._source, _cache.engine_imports, _cache.module_sources):
            fn.cache_clear()


# ---------------------------------------------------------------------------------------------
# End to end: a helper edited between two processes


_PROBE = """
import json
import numpy as np
import engine
from engine import _ilp_nb, downsample, indicators
from engine.ilp import encode_ilp

ilp = encode_ilp("t", {"x": np.array([np.nan, 1.5])}, at=np.array([1, 2])).decode()
y = np.array([3.0, -7.0, 1.0, 2.0, -1.0, 5.0, 0.5, -2.0, 4.0])
picked = downsample.minmax(np.arange(9), y, 4).tolist()
sma = indicators.sma_1d_nb(np.arange(6.0), 2).tolist()
kernels = {"ilp": _ilp_nb.encode_rows_nb, "minmax": downsample.minmax_nb,
           "sma": indicators.sma_1d_nb}
print(json.dumps({
    "engine": engine.__file__, "ilp": ilp, "minmax": picked, "sma": sma,
    "hits": {k: sum(v.stats.cache_hits.values()) for k, v in kernels.items()},
    "misses": {k: sum(v.stats.cache_misses.values()) for k, v in kernels.items()},
}))
"""


def _start_probe(root: Path, cache_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(root)}
    env.pop("NUMBA_DISABLE_JIT", None)
    return subprocess.Popen(
        [sys.executable, "-c", _PROBE], cwd=root, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _result(root: Path, probe: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = probe.communicate()
    assert probe.returncode == 0, stderr
    out: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    assert Path(out["engine"]).resolve().parent == root / "engine"
    return out


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, (path, old)
    path.write_text(text.replace(old, new))


def _seed(copy: Path, cache_dir: Path) -> None:
    """Copy this process's cached machine code of the probed modules to where the copied
    package looks for it: the stamps hash file contents, so they hold for identical copies.
    Only saves the first probe a compile (~7 s); the test holds without it."""
    from engine import _ilp_nb, downsample, indicators
    from engine.ilp import encode_ilp

    encode_ilp("t", {"x": np.array([np.nan, 1.5])}, at=np.array([1, 2]))
    y = np.array([3.0, -7.0, 1.0, 2.0, -1.0, 5.0, 0.5, -2.0, 4.0])
    downsample.minmax(np.arange(9), y, 4)
    indicators.sma_1d_nb(np.arange(6.0), 2)
    subpath = UserProvidedCacheLocator.get_suitable_cache_subpath(str(copy / "x.py"))
    target = cache_dir / subpath
    target.mkdir(parents=True)
    for kernel, modules in [
        (_ilp_nb.encode_rows_nb, ("_ilp_nb", "_ryu")),
        (downsample.minmax_nb, ("downsample",)),
        (indicators.sma_1d_nb, ("indicators",)),
    ]:
        source = Path(kernel._cache._impl.locator.get_cache_path())
        for module in modules:
            for path in source.glob(f"{module}.*.nb[ic]"):
                shutil.copy2(path, target / path.name)


def _copy_engine(root: Path, cache_dir: Path) -> None:
    copy = root / "engine"
    copy.mkdir(parents=True)
    for path in ENGINE.glob("*.py"):
        shutil.copy2(path, copy / path.name)
    _seed(copy, cache_dir)


def test_an_edited_helper_recompiles_the_kernels_that_use_it_and_no_others(
    tmp_path: Path,
) -> None:
    """Two copies of the package, one edit each, probed in parallel: the edited file's
    kernels give the new result, the others still load from the cache."""
    ilp_root, minmax_root = (tmp_path.resolve() / name for name in ("ilp", "minmax"))
    cache_dir = tmp_path.resolve() / "numba_cache"
    _copy_engine(ilp_root, cache_dir)
    _copy_engine(minmax_root, cache_dir)

    before = _result(ilp_root, _start_probe(ilp_root, cache_dir))
    assert before["ilp"] == "t x=NaN 1\nt x=1.5 2\n"
    assert before["minmax"] == [0, 1, 5, 7]
    assert before["sma"][1:] == [0.5, 1.5, 2.5, 3.5, 4.5]

    # A constant of the float writer (engine/_ryu.py), compiled into the ILP row encoder of
    # engine/_ilp_nb.py, which numba alone would serve from its cache unchanged.
    _edit(ilp_root / "engine/_ryu.py", '_NAN = _ascii_word(b"NaN")', '_NAN = _ascii_word(b"NaX")')
    # The mask of downsample's float ordering: keeping the sign bit ranks negatives highest.
    _edit(
        minmax_root / "engine/downsample.py", "_ABS_MASK = 0x7FFF_FFFF_FFFF_FFFF", "_ABS_MASK = -1"
    )
    ilp_probe = _start_probe(ilp_root, cache_dir)
    minmax_probe = _start_probe(minmax_root, cache_dir)
    ilp, minmax = _result(ilp_root, ilp_probe), _result(minmax_root, minmax_probe)

    assert ilp["ilp"] == "t x=NaX 1\nt x=1.5 2\n"
    assert ilp["misses"] == {"ilp": 1, "minmax": 0, "sma": 0}
    assert (ilp["minmax"], ilp["sma"]) == (before["minmax"], before["sma"])

    assert minmax["minmax"] != before["minmax"]
    assert minmax["misses"] == {"ilp": 0, "minmax": 1, "sma": 0}
    assert (minmax["ilp"], minmax["sma"]) == (before["ilp"], before["sma"])
