"""ILP encoding of OHLCV rows, ours beside the QuestDB client (text protocol) in the same run.

1,000,000 rows of three shapes: a symbol tag, open/high/low/close (two decimals) and volume
(four decimals) floats, int64 ns timestamps one minute apart; the same with an int64 column
(issue 15's shape); and that shape with full-precision floats. The client encodes a pandas DataFrame with
``Buffer(protocol_version=1).dataframe(...)``; ``engine.encode_ilp`` encodes the same columns
as numpy arrays. The outputs are asserted byte-identical. Each contender runs ``REPEATS``
times, interleaved so that a noisy neighbour hits both alike; best and median rows/s are
printed with the ratio ours / client (> 1: ours is faster), and each one's median CPU time
(every thread of the process: ours encodes on every core numba has, the client on one), the
work done, which a loaded machine disturbs less than the wall clock. The client is timed both
without and with ``bytes(buffer)``, since ``encode_ilp`` returns ``bytes``. Compile time is reported
apart: a cold compile in a fresh process with an empty numba cache, and this process's first
call (a load from the on-disk cache once it is warm).

Run: ``.venv/bin/python bench/engine_ilp.py [n_rows]``

``--floats N`` instead checks the float formatter on N doubles of every kind (random bit
patterns, every exponent, subnormals, short decimals, integers): our bytes against the
client's, and the digits of every value against ``repr(float)``.
"""

from __future__ import annotations

import sys as _sys
from pathlib import Path as _Path

# bench/engine.py would shadow the engine package for scripts run from bench/: the repository
# root comes first on the path.
_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from numba import get_num_threads

from engine._ilp_nb import encode_rows_nb
from engine.ilp import encode_ilp

with warnings.catch_warnings():
    # Buffer is only importable from the deprecated ``questdb.ingress`` (questdb 6).
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Buffer

N_ROWS = 1_000_000
REPEATS = 7
TABLE = "ohlcv"


def make_rows(n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    close = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n))), 2)
    open_ = np.round(close * (1.0 + rng.normal(0.0, 1e-4, n)), 2)
    columns = {
        "symbol": np.array(["BTC-USD", "ETH-USD", "SOL-USD"], dtype=object)[rng.integers(0, 3, n)],
        "open": open_,
        "high": np.round(np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 2e-3, n)), 2),
        "low": np.round(np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 2e-3, n)), 2),
        "close": close,
        "volume": np.round(rng.exponential(1_000.0, n), 4),
    }
    ts = 1_700_000_000 * 10**9 + np.arange(n, dtype=np.int64) * 60 * 10**9
    return columns, ts


def make_rows_with_int(
    n: int, seed: int = 0, *, full_precision: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Issue 15's shape: a symbol, five float64 columns, one int64 column. Price-like floats
    (the OHLCV rows above) or, with ``full_precision``, doubles of 15-17 significant digits
    (computed values such as returns or indicator outputs), where every float takes Ryu's
    full algorithm."""
    columns, ts = make_rows(n, seed)
    rng = np.random.default_rng(seed + 1)
    if full_precision:
        for name in ("open", "high", "low", "close", "volume"):
            columns[name] = columns[name] * (1.0 + rng.normal(0.0, 1e-3, n))
    columns["trades"] = rng.integers(0, 50_000, n)
    return columns, ts


def client_encoder(frame: pd.DataFrame, *, to_bytes: bool) -> Callable[[], bytes | None]:
    def run() -> bytes | None:
        buffer = Buffer(protocol_version=1)
        buffer.dataframe(frame, table_name=TABLE, symbols=["symbol"], at="ts")
        return bytes(buffer) if to_bytes else None

    return run


_FIRST_CALL = """
import time
import numpy as np
t0 = time.perf_counter()
from engine.ilp import encode_ilp
encode_ilp("t", {"s": np.array(["a"], dtype=object), "x": np.ones(1)}, symbols=["s"], at=[1])
print(time.perf_counter() - t0)
"""


def cold_compile_seconds() -> float:
    """Import and first call of encode_ilp where numba's cache is empty: the compile cost a
    worker pays once, at start, with ``cache=True``."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(root)}
        run = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
        )
    return float(run.stdout.strip().splitlines()[-1])


def race(
    contenders: dict[str, Callable[[], object]],
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds (every thread of this process) of each contender's runs."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(REPEATS):
        for name, fn in contenders.items():
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return times, cpu


SHAPES: dict[str, Callable[[int], tuple[dict[str, np.ndarray], np.ndarray]]] = {
    "OHLCV: symbol + 5 price floats (2-4 decimals)": make_rows,
    "symbol + 5 price floats + 1 int64": make_rows_with_int,
    "symbol + 5 full-precision floats + 1 int64": lambda n: make_rows_with_int(
        n, full_precision=True
    ),
}


def race_shape(title: str, columns: dict[str, np.ndarray], ts: np.ndarray) -> None:
    n_rows = ts.size
    frame = pd.DataFrame({**columns, "ts": pd.Series(ts.view("datetime64[ns]"))})

    def ours() -> bytes:
        return encode_ilp(TABLE, columns, symbols=["symbol"], at=ts)

    client = client_encoder(frame, to_bytes=True)
    expected = client()
    got = ours()
    assert got == expected, f"encode_ilp differs from the QuestDB client ({title})"
    print(f"\n{title}: {n_rows:,} rows, bytes identical to the client ({len(got):,} bytes)")
    del expected, got
    times, cpu = race(
        {
            "client Buffer.dataframe": client_encoder(frame, to_bytes=False),
            "client Buffer.dataframe + bytes()": client,
            "engine.encode_ilp": ours,
        }
    )
    best_ours = min(times["engine.encode_ilp"])
    median_ours = statistics.median(times["engine.encode_ilp"])
    cpu_ours = statistics.median(cpu["engine.encode_ilp"])
    for name, samples in times.items():
        best = min(samples)
        median = statistics.median(samples)
        cpu_median = statistics.median(cpu[name])
        line = (
            f"  {name:34s} best {n_rows / best / 1e6:5.2f}M rows/s ({best * 1e3:7.1f} ms)"
            f"   median {n_rows / median / 1e6:5.2f}M rows/s ({median * 1e3:7.1f} ms)"
            f"   CPU median {cpu_median * 1e3:7.1f} ms"
        )
        if name != "engine.encode_ilp":
            line += (
                f"   ours/client: best {best / best_ours:4.2f}x, median {median / median_ours:4.2f}x,"
                f" CPU {cpu_median / cpu_ours:4.2f}x"
            )
        print(line)


def main(n_rows: int = N_ROWS) -> None:
    print(
        f"numba threads: {get_num_threads()}; {REPEATS} interleaved runs each; target: "
        "ours/client >= 2x (median)"
    )
    print(f"compile, in a fresh process with an empty numba cache: {cold_compile_seconds():.1f} s")
    columns, ts = make_rows(10)
    t0 = time.perf_counter()
    encode_ilp(TABLE, columns, symbols=["symbol"], at=ts)
    how = "loaded from numba's cache" if encode_rows_nb.stats.cache_hits else "compiled"
    print(f"first call in this process ({how}): {time.perf_counter() - t0:.2f} s")
    for title, make in SHAPES.items():
        race_shape(title, *make(n_rows))


def decimal_parts(text: str) -> tuple[str, str, int] | str:
    """``(sign, digits, exponent)`` with ``digits * 10**exponent`` the value a float text
    spells, trailing zeros folded into the exponent; non-finite spellings as they are."""
    match = re.fullmatch(r"(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?", text)
    if match is None:
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(text, text)
    sign, whole, fraction, exp = (
        match.group(1),
        match.group(2),
        match.group(3) or "",
        match.group(4),
    )
    digits = (whole + fraction).lstrip("0") or "0"
    stripped = digits.rstrip("0") or "0"
    exponent = int(exp or 0) - len(fraction) + len(digits) - len(stripped)
    return sign, stripped, exponent if stripped != "0" else 0


def verify_floats(n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    quarter = n // 4
    exponents = rng.integers(0, 2047, quarter).astype(np.uint64) << np.uint64(52)
    scale = 10.0 ** rng.integers(0, 12, quarter)
    values = np.concatenate(
        [
            rng.integers(0, 2**64, quarter, dtype=np.uint64).view(np.float64),
            (exponents | rng.integers(0, 2**52, quarter, dtype=np.uint64)).view(np.float64),
            rng.integers(0, 2**52, quarter // 4, dtype=np.uint64).view(np.float64),
            np.round(rng.uniform(-1e6, 1e6, quarter) * scale) / scale,
            rng.integers(-(2**60), 2**60, quarter - quarter // 4).astype(np.float64),
        ]
    )
    at = np.arange(values.size, dtype=np.int64)
    t0 = time.perf_counter()
    ours = encode_ilp("t", {"x": values}, at=at)
    print(f"{values.size:,} doubles encoded in {time.perf_counter() - t0:.2f} s")
    buffer = Buffer(protocol_version=1)
    frame = pd.DataFrame({"x": values, "ts": pd.Series(at.view("datetime64[ns]"))})
    buffer.dataframe(frame, table_name="t", symbols=[], at="ts")
    assert ours == bytes(buffer), "encode_ilp differs from the QuestDB client"
    print("bytes identical to the client")
    texts = [line[4 : line.rindex(" ")] for line in ours.decode().split("\n")[:-1]]
    wrong = [
        (v, t) for v, t in zip(values.tolist(), texts) if decimal_parts(t) != decimal_parts(repr(v))
    ]
    assert not wrong, f"{len(wrong)} values differ from repr, first: {wrong[:5]}"
    print("digits identical to repr(float) for every value")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--floats":
        verify_floats(int(sys.argv[2]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else N_ROWS)
