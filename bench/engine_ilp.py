"""ILP encoding of OHLCV rows, ours beside the QuestDB client (text protocol) in the same run.

1,000,000 rows: a symbol tag, open/high/low/close (two decimals) and volume (four decimals)
floats, int64 ns timestamps one minute apart. The client encodes a pandas DataFrame with
``Buffer(protocol_version=1).dataframe(...)``; ``engine.encode_ilp`` encodes the same columns
as numpy arrays. The outputs are asserted byte-identical. Each contender runs ``REPEATS``
times, interleaved so that a noisy neighbour hits both alike; best and median rows/s are
printed with the ratio ours / client (> 1: ours is faster). The client is timed both without
and with ``bytes(buffer)``, since ``encode_ilp`` returns ``bytes``. Our first call, which
compiles the kernels or loads them from numba's cache, is timed apart.

Run: ``.venv/bin/python bench/engine_ilp.py [n_rows]``
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from numba import get_num_threads

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


def client_encoder(frame: pd.DataFrame, *, to_bytes: bool) -> Callable[[], bytes | None]:
    def run() -> bytes | None:
        buffer = Buffer(protocol_version=1)
        buffer.dataframe(frame, table_name=TABLE, symbols=["symbol"], at="ts")
        return bytes(buffer) if to_bytes else None

    return run


def race(contenders: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(REPEATS):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def main(n_rows: int = N_ROWS) -> None:
    columns, ts = make_rows(n_rows)
    frame = pd.DataFrame({**columns, "ts": pd.Series(ts.view("datetime64[ns]"))})
    print(
        f"{n_rows:,} OHLCV rows, one symbol tag; numba threads: {get_num_threads()}; "
        f"{REPEATS} interleaved runs each"
    )

    def ours() -> bytes:
        return encode_ilp(TABLE, columns, symbols=["symbol"], at=ts)

    t0 = time.perf_counter()
    encode_ilp(TABLE, {k: v[:10] for k, v in columns.items()}, symbols=["symbol"], at=ts[:10])
    print(f"first call (compile or load from numba's cache): {time.perf_counter() - t0:.2f} s")

    client = client_encoder(frame, to_bytes=True)
    expected = client()
    got = ours()
    assert got == expected, "encode_ilp differs from the QuestDB client"
    print(f"bytes identical to the client: {len(got):,} bytes")
    del expected, got

    times = race(
        {
            "client Buffer.dataframe": client_encoder(frame, to_bytes=False),
            "client Buffer.dataframe + bytes()": client,
            "engine.encode_ilp": ours,
        }
    )
    best_ours = min(times["engine.encode_ilp"])
    median_ours = statistics.median(times["engine.encode_ilp"])
    for name, samples in times.items():
        best = min(samples)
        median = statistics.median(samples)
        line = (
            f"  {name:34s} best {n_rows / best / 1e6:5.2f}M rows/s ({best * 1e3:7.1f} ms)"
            f"   median {n_rows / median / 1e6:5.2f}M rows/s ({median * 1e3:7.1f} ms)"
        )
        if name != "engine.encode_ilp":
            line += f"   ours/client: best {best / best_ours:4.2f}x, median {median / median_ours:4.2f}x"
        print(line)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N_ROWS)
