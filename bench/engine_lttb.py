# mypy: disable-error-code="no-untyped-call"
# (tsdownsample's downsamplers carry no annotations)
"""LTTB and min-max downsampling, ours beside tsdownsample in the same run.

10,000,000 points (int64 ns timestamps, float64 random walk) down to 2,000. Each contender runs
`REPEATS` times, interleaved so a noisy neighbour hits both alike; best and median are printed
with the ratio tsdownsample / ours (> 1: ours is faster). The first call of each kernel, which
compiles it or loads it from numba's cache, is timed apart.

Run: ``.venv/bin/python bench/engine_lttb.py [n_points]``
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# bench/engine.py would shadow the engine package for scripts run from bench/: the repository
# root comes first on the path.
_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
from numba import get_num_threads
from tsdownsample import LTTBDownsampler, MinMaxDownsampler

from engine import downsample

N_POINTS = 10_000_000
N_OUT = 2_000
REPEATS = 15


def make_series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = 1_700_000_000 * 10**9 + np.cumsum(rng.integers(500_000_000, 1_500_000_000, n))
    y = 10_000.0 + np.cumsum(rng.normal(0.0, 1.0, n))
    return ts.astype(np.int64), y


def first_call(fn: Callable[[], np.ndarray], dispatcher: object) -> str:
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    stats = getattr(dispatcher, "stats", None)
    how = "loaded from cache" if stats is not None and stats.cache_hits else "compiled"
    return f"{elapsed * 1e3:8.1f} ms ({how})"


def race(contenders: dict[str, Callable[[], np.ndarray]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(REPEATS):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def report(title: str, ours: str, times: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    best_ours = min(times[ours])
    med_ours = statistics.median(times[ours])
    for name, samples in times.items():
        best = min(samples)
        med = statistics.median(samples)
        line = f"  {name:36s} best {best * 1e3:8.2f} ms   median {med * 1e3:8.2f} ms"
        if name != ours:
            line += f"   ratio best {best / best_ours:5.2f}x   median {med / med_ours:5.2f}x"
        print(line)


def main(n_points: int = N_POINTS) -> None:
    x, y = make_series(n_points)
    print(
        f"{n_points:,} points -> {N_OUT:,}; numba threads: {get_num_threads()}; "
        f"{REPEATS} interleaved runs each"
    )

    ours_lttb = lambda: downsample.lttb(x, y, N_OUT)
    ours_minmax = lambda: downsample.minmax(x, y, N_OUT)
    print("first call, lttb   " + first_call(ours_lttb, downsample.lttb_nb))
    print("first call, minmax " + first_call(ours_minmax, downsample.minmax_nb))

    lttb_ref = LTTBDownsampler()
    minmax_ref = MinMaxDownsampler()
    expected = lttb_ref.downsample(x, y, n_out=N_OUT).astype(np.int64)
    if not np.array_equal(ours_lttb(), expected):
        raise SystemExit("lttb differs from tsdownsample")
    if not np.array_equal(ours_minmax(), minmax_ref.downsample(y, n_out=N_OUT).astype(np.int64)):
        raise SystemExit("minmax differs from tsdownsample")
    print("indices identical to tsdownsample: lttb yes, minmax yes")

    report(
        "LTTB",
        "engine.downsample.lttb",
        race(
            {
                "engine.downsample.lttb": ours_lttb,
                "tsdownsample LTTBDownsampler": lambda: lttb_ref.downsample(x, y, n_out=N_OUT),
            }
        ),
    )
    report(
        "min-max",
        "engine.downsample.minmax",
        race(
            {
                "engine.downsample.minmax": ours_minmax,
                "  same, assume_sorted=True": lambda: downsample.minmax(
                    x, y, N_OUT, assume_sorted=True
                ),
                "tsdownsample MinMaxDownsampler": lambda: minmax_ref.downsample(y, n_out=N_OUT),
                "tsdownsample MinMax parallel=True": lambda: minmax_ref.downsample(
                    y, n_out=N_OUT, parallel=True
                ),
            }
        ),
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N_POINTS)
