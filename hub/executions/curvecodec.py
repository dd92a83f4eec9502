"""How a chunk of the equity curve is stored: float64 balances as raw little-endian bytes, and
its int64 ns times either the same way or, for a chunk of more than two evenly spaced times (bars
of a regular series), as just the first time and the step: 16 bytes instead of 800,000 for
100,000 points. The length tells the forms apart (``8 * count`` bytes, or 16 with ``count > 2``).
"""

from __future__ import annotations

import numpy as np


def encode_times(ts: np.ndarray) -> bytes:
    ts = np.ascontiguousarray(ts, dtype="<i8")
    if len(ts) > 2:
        step = ts[1] - ts[0]
        if np.all(np.diff(ts) == step):
            return np.array([ts[0], step], dtype="<i8").tobytes()
    return ts.tobytes()


def decode_times(data: bytes, count: int) -> np.ndarray:
    if len(data) == 8 * count:
        return np.frombuffer(data, dtype="<i8")
    if count > 2 and len(data) == 16:
        first, step = (int(v) for v in np.frombuffer(data, dtype="<i8"))
        times: np.ndarray = np.arange(count, dtype=np.int64) * step + first
        return times
    raise ValueError(f"stored times of {len(data)} bytes do not hold {count} points")


def encode_balances(balance: np.ndarray) -> bytes:
    return np.ascontiguousarray(balance, dtype="<f8").tobytes()


def decode_balances(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f8")
