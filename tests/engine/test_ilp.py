"""``engine.encode_ilp`` against its oracles: the QuestDB client's text ILP (protocol version 1),
through both ``Buffer.dataframe`` and ``Buffer.row``, byte for byte; and ``repr(float)`` for the
digits of every float, independently of the client."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from questdb import QuestDBError

import engine
from engine._ryu import _hinted_decimal_nb, _short_decimal_nb, f64_to_decimal_nb
from engine.ilp import CHUNK_ROWS, MAX_NAME_LEN, encode_ilp

with warnings.catch_warnings():
    # questdb 6 keeps Buffer only in the deprecated ``questdb.ingress``.
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Buffer, ServerTimestamp, TimestampNanos

ROOT = Path(__file__).resolve().parents[2]
INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)
T0 = 1_700_000_000 * 10**9
AT = "__at__"  # the client's timestamp column; no test column uses this name
ESCAPES = ' ,=\n\r\\"'


# --- oracles -------------------------------------------------------------------------------


def client_dataframe(
    table: str, columns: Mapping[str, Any], at: Any, symbols: tuple[str, ...] = ()
) -> bytes:
    frame = pd.DataFrame(
        {
            **{name: pd.Series(np.asarray(values)) for name, values in columns.items()},
            AT: pd.Series(np.asarray(at, dtype=np.int64).view("datetime64[ns]")),
        }
    )
    buffer = Buffer(protocol_version=1)
    buffer.dataframe(frame, table_name=table, symbols=list(symbols), at=AT)
    return bytes(buffer)


def _python_value(value: Any) -> Any:
    """A non-float cell as ``Buffer.row`` takes it; ``None`` for a string null."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    return str(value)


def client_rows(
    table: str, columns: Mapping[str, Any], at: Any, symbols: tuple[str, ...] = ()
) -> bytes:
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    buffer = Buffer(protocol_version=1)
    for i, ts in enumerate(np.asarray(at, dtype=np.int64).tolist()):
        tags = {name: _python_value(a[i]) for name, a in arrays.items() if name in symbols}
        fields: dict[str, Any] = {}
        for name, a in arrays.items():
            if name not in symbols:
                value = a[i]
                # A NaN float field is a value; a NaN in a string column is a null.
                fields[name] = float(value) if a.dtype.kind == "f" else _python_value(value)
        buffer.row(
            table,
            symbols=tags,
            columns=fields,
            at=ServerTimestamp if ts == INT64_MIN else TimestampNanos(ts),
        )
    return bytes(buffer)


def repr_text(x: float) -> str:
    """The client's float text derived from ``repr``: an oracle independent of Ryu."""
    if math.isnan(x):
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    text = repr(x)
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    if text == "0.0":
        return sign + "0.0"
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:e([+-]\d+))?", text)
    assert match is not None, text
    whole, fraction, exp = match.group(1), match.group(2) or "", int(match.group(3) or 0)
    digits = (whole + fraction).lstrip("0")
    exponent = exp - len(fraction) + len(digits) - len(digits.rstrip("0"))
    digits = digits.rstrip("0")
    length = len(digits)
    point = length + exponent
    if 0 <= exponent and point <= 16:
        body = digits + "0" * (point - length) + ".0"
    elif 0 < point <= 16:
        body = digits[:point] + "." + digits[point:]
    elif -5 < point <= 0:
        body = "0." + "0" * -point + digits
    elif length == 1:
        body = f"{digits}e{point - 1}"
    else:
        body = f"{digits[0]}.{digits[1:]}e{point - 1}"
    return sign + body


def ohlcv(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    close = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n))), 2)
    open_ = np.round(close * (1.0 + rng.normal(0.0, 1e-4, n)), 2)
    columns = {
        "symbol": np.array(["BTC-USD", "ETH-USD", "SOL-USD"], dtype=object)[rng.integers(0, 3, n)],
        "open": open_,
        "high": np.round(np.maximum(open_, close) * 1.001, 2),
        "low": np.round(np.minimum(open_, close) * 0.999, 2),
        "close": close,
        "volume": np.round(rng.exponential(1_000.0, n), 4),
    }
    return columns, T0 + np.arange(n, dtype=np.int64) * 60 * 10**9


def special_floats(seed: int, n_random: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    powers10 = np.array([float(f"1e{k}") for k in range(-323, 309)])
    powers2 = np.ldexp(1.0, np.arange(-1074, 1024))
    edges = np.array(
        [
            1e16, 9999999999999998.0, 1e15, 1e17, 123456789012345678.0, 2.0**53, 2.0**53 + 2,
            1e-5, 9.999999999999999e-6, 1e-4, 1e-6, 0.1, 0.3, 100.03,
            5e-324, 2.225073858507201e-308, 2.2250738585072014e-308, 1.7976931348623157e308,
            0.0, -0.0, np.inf, -np.inf,
        ]
    )  # fmt: skip
    nan_bits = np.array(
        [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FFFFFFFFFFFFFFF],
        dtype=np.uint64,
    )
    exponents = rng.integers(0, 2047, n_random).astype(np.uint64) << np.uint64(52)
    mantissas = rng.integers(0, 2**52, n_random, dtype=np.uint64)
    scale = 10.0 ** rng.integers(0, 9, n_random)
    with np.errstate(over="ignore"):  # nextafter(max double, inf) is inf, as wanted
        up = np.nextafter(edges, np.inf)
    parts = [
        rng.integers(0, 2**64, n_random, dtype=np.uint64).view(np.float64),  # any bit pattern
        (exponents | mantissas).view(np.float64),  # every exponent equally
        rng.integers(1, 2**52, n_random // 4, dtype=np.uint64).view(np.float64),  # subnormals
        np.round(rng.uniform(0.0, 1e6, n_random) * scale) / scale,  # short decimals
        rng.integers(-(2**53), 2**53, n_random // 4).astype(np.float64),  # integers
        powers10,
        np.nextafter(powers10, np.inf),
        np.nextafter(powers10, 0.0),
        powers2,
        np.nextafter(powers2, np.inf),
        edges,
        up,
        np.nextafter(edges, -np.inf),
        nan_bits.view(np.float64),
    ]
    values = np.concatenate(parts)
    return np.concatenate([values, -values])


# --- byte equality with the client ---------------------------------------------------------


def test_engine_exports_encode_ilp() -> None:
    assert engine.encode_ilp is encode_ilp


def test_ohlcv_rows_match_client_dataframe_and_rows() -> None:
    columns, at = ohlcv(3 * CHUNK_ROWS + 17, seed=1)  # several parallel chunks
    ours = encode_ilp("ohlcv", columns, symbols=("symbol",), at=at)
    assert ours == client_dataframe("ohlcv", columns, at, ("symbol",))
    head = {name: values[:500] for name, values in columns.items()}
    assert encode_ilp("ohlcv", head, symbols=["symbol"], at=at[:500]) == client_rows(
        "ohlcv", head, at[:500], ("symbol",)
    )


def test_calls_after_calls_of_other_sizes_and_threads_match_client() -> None:
    """The scratch memory kept between calls holds the previous call's text: each call writes
    what it reads, whatever came before, and calls from several threads at once (one on the
    kept scratch, the others on their own) each get their own rows."""
    runs = [ohlcv(n, seed) for n, seed in [(2 * CHUNK_ROWS + 5, 2), (300, 3), (CHUNK_ROWS, 4)]]
    expected = [client_dataframe("ohlcv", c, at, ("symbol",)) for c, at in runs]
    for _ in range(2):
        for (columns, at), want in zip(runs, expected, strict=True):
            assert encode_ilp("ohlcv", columns, symbols=["symbol"], at=at) == want
    with ThreadPoolExecutor(3) as pool:
        done = pool.map(
            lambda k: encode_ilp("ohlcv", runs[k % 3][0], symbols=["symbol"], at=runs[k % 3][1]),
            range(12),
        )
        assert list(done) == [expected[k % 3] for k in range(12)]


def test_floats_of_every_kind_match_client_and_repr() -> None:
    values = special_floats(seed=2, n_random=25_000)
    at = np.arange(values.size, dtype=np.int64)
    ours = encode_ilp("t", {"x": values}, at=at)
    assert ours == client_dataframe("t", {"x": values}, at)
    texts = [line.split(b" ")[1][2:].decode() for line in ours.split(b"\n")[:-1]]
    mismatches = [(v, t) for v, t in zip(values.tolist(), texts) if t != repr_text(v)]
    assert mismatches == []
    seen = set(texts)
    assert {"NaN", "Infinity", "-Infinity", "-0.0", "0.0", "1e16", "0.00001"} <= seen
    assert {"9.999999999999999e-6", "1000000000000000.0", "5e-324", "-1e-323"} <= seen


def test_random_bit_patterns_match_repr() -> None:
    """200k doubles of every magnitude against ``repr``, without the client in the loop;
    ``bench/engine_ilp.py``-style millions run in the same way, only longer."""
    rng = np.random.default_rng(3)
    values = rng.integers(0, 2**64, 200_000, dtype=np.uint64).view(np.float64)
    ours = encode_ilp("t", {"x": values}, at=np.zeros(values.size, dtype=np.int64))
    texts = ours.decode().split("\n")[:-1]
    assert [t[4:-2] for t in texts] == [repr_text(v) for v in values.tolist()]


def test_short_decimal_fast_path_equals_ryu() -> None:
    """The 15-digit fast path must give Ryu's digits whenever it claims a result, and claim
    one for every double that is the nearest to a decimal of at most 15 digits."""
    rng = np.random.default_rng(4)
    n = 40_000
    mantissas = rng.integers(1, 10 ** rng.integers(1, 16, n), dtype=np.int64).astype(np.float64)
    short = mantissas / 10.0 ** rng.integers(0, 23, n)  # one correctly rounded division
    values = np.concatenate([short, np.nextafter(short, np.inf), rng.uniform(1e-7, 9e15, 5_000)])
    claimed = in_range = 0
    for i, (v, bits) in enumerate(zip(values.tolist(), values.view(np.uint64).tolist())):
        exponent = (bits >> 52) & 0x7FF
        if not 1000 <= exponent < 1076:
            continue
        ok, digits, exp10 = _short_decimal_nb(v, exponent)
        in_range += i < n
        if ok:
            claimed += i < n
            assert (digits, exp10) == f64_to_decimal_nb(np.uint64(bits & (2**52 - 1)), exponent)
    assert in_range > n // 2 and claimed == in_range


def test_hinted_decimal_path_equals_ryu() -> None:
    """The per-column guess of the number of decimals must give Ryu's digits whenever its
    check passes, whatever the guess."""
    rng = np.random.default_rng(7)
    n = 4_000
    mantissas = rng.integers(1, 10 ** rng.integers(1, 16, n), dtype=np.int64).astype(np.float64)
    values = np.concatenate([mantissas / 10.0 ** rng.integers(0, 23, n), rng.uniform(0, 1e9, n)])
    passed = 0
    for v, bits in zip(values.tolist(), values.view(np.uint64).tolist()):
        exponent = (bits >> 52) & 0x7FF
        if not 1000 <= exponent < 1076:
            continue
        expected = f64_to_decimal_nb(np.uint64(bits & (2**52 - 1)), exponent)
        for p in range(-22, 23, 3):
            ok, digits, exp10 = _hinted_decimal_nb(v, p)
            if ok:
                passed += 1
                assert (digits, exp10) == expected
    assert passed > n


def test_columns_of_mixed_precision_match_client_and_repr() -> None:
    """Each float column carries its guess of decimals from row to row: shuffle precisions,
    magnitudes and specials so the guess is wrong, stale and right in every order."""
    rng = np.random.default_rng(8)
    n = 30_000
    decimals = rng.integers(-3, 12, n)
    values = np.round(rng.uniform(-1e6, 1e6, n) * 10.0**decimals) / 10.0**decimals
    specials = special_floats(seed=9, n_random=200)
    values[rng.integers(0, n, n // 10)] = rng.choice(specials, n // 10)
    columns = {"a": values, "b": np.roll(values, 7), "c": rng.permutation(values)}
    at = np.arange(n, dtype=np.int64)
    ours = encode_ilp("t", columns, at=at)
    assert ours == client_dataframe("t", columns, at)
    first = [line.split(b",")[0][4:].decode() for line in ours.split(b"\n")[:-1]]
    assert first == [repr_text(v) for v in values.tolist()]


def test_integers_and_bools_match_client() -> None:
    rng = np.random.default_rng(5)
    n = 64
    i64 = rng.integers(INT64_MIN, INT64_MAX, n, dtype=np.int64, endpoint=True)
    i64[:6] = [INT64_MIN, INT64_MAX, 0, -1, 1, INT64_MIN + 1]
    columns: dict[str, np.ndarray] = {
        "i64": i64,
        "i32": rng.integers(-(2**31), 2**31, n).astype(np.int32),
        "u32": rng.integers(0, 2**32, n).astype(np.uint32),
        "u64": rng.integers(0, 2**63, n, dtype=np.uint64),
        "i8": rng.integers(-128, 128, n).astype(np.int8),
        "flag": rng.integers(0, 2, n).astype(bool),
        "f32": rng.normal(0, 1e3, n).astype(np.float32),
    }
    at = T0 + np.arange(n, dtype=np.int64)
    ours = encode_ilp("ints", columns, at=at)
    assert ours == client_dataframe("ints", columns, at)
    assert b"i64=-9223372036854775808i" in ours and b"i64=9223372036854775807i" in ours
    assert ours == client_rows("ints", columns, at)


NASTY = [
    "",
    "plain",
    "space here",
    "a,b=c",
    "line\nbreak\rreturn",
    "back\\slash\\",
    'quote " inside',
    "tab\tnul\x00bell\x07",
    "unicode é ü ß 漢字 🚀",
    ESCAPES * 3,
    "x" * 15,
    "y" * 16,
    "z" * 17,
    "long " + '\\, ="' * 400,
]


def test_strings_and_symbols_escape_like_client() -> None:
    n = len(NASTY) * 3
    values = (NASTY * 3)[:n]
    sym = np.array([values[(i * 5) % len(values)] if i % 4 else None for i in range(n)], object)
    text = np.array([values[i] if i % 3 else None for i in range(n)], dtype=object)
    columns = {
        "price x": np.linspace(-5.0, 5.0, n),
        "sym=1": sym,
        "note é": text,
        "kind": np.array(["β"] * n),  # numpy unicode, as a symbol
        "plain": np.array([f"row {i}" for i in range(n)]),  # numpy unicode, as a field
    }
    at = T0 + np.arange(n, dtype=np.int64)
    symbols = ("sym=1", "kind")
    ours = encode_ilp("my table=é", columns, symbols=symbols, at=at)
    assert ours == client_dataframe("my table=é", columns, at, symbols)
    assert ours == client_rows("my table=é", columns, at, symbols)
    assert ours.startswith(b"my\\ table\\=\xc3\xa9,kind=\xce\xb2 price\\ x=-5.0,")


def test_nulls_are_left_out_like_client() -> None:
    nan_object = float("nan")
    columns = {
        "s": np.array(["a", None, pd.NA, nan_object, "b", None], dtype=object),
        "f": np.array([None, "x", "y", None, pd.NA, "z"], dtype=object),
        "g": np.array(["first", "second", None, "fourth", "fifth", None], dtype=object),
        "h": np.array([None] * 6, dtype=object),  # no value at all, before another string
        "k": np.array(["k"] * 6, dtype=object),
    }
    at = T0 + np.arange(6, dtype=np.int64)
    ours = encode_ilp("t", columns, symbols=["s"], at=at)
    assert ours == client_dataframe("t", columns, at, ("s",))
    # A null first field: the next field opens the field set with a space.
    assert ours.split(b"\n")[0] == b't,s=a g="first",k="k" ' + str(T0).encode()


def test_equal_strings_held_by_distinct_objects() -> None:
    parts = ["ab", "c"]
    values = np.array(["".join(parts) for _ in range(5)] + ["abc", "abd"], dtype=object)
    assert len({id(v) for v in values}) == len(values)
    at = np.arange(values.size, dtype=np.int64)
    ours = encode_ilp("t", {"s": values, "n": np.arange(values.size)}, symbols=["s"], at=at)
    assert ours == client_dataframe("t", {"s": values, "n": np.arange(values.size)}, at, ("s",))


def test_symbols_come_first_in_column_order() -> None:
    columns = {
        "x": np.array([1.5]),
        "s2": np.array(["b"], dtype=object),
        "y": np.array([2]),
        "s1": np.array(["a"], dtype=object),
    }
    at = np.array([7])
    ours = encode_ilp("t", columns, symbols=["s1", "s2"], at=at)
    assert ours == b"t,s2=b,s1=a x=1.5,y=2i 7\n"
    assert ours == client_dataframe("t", columns, at, ("s1", "s2"))


def test_nat_timestamp_is_left_to_the_server() -> None:
    at = np.array([T0, INT64_MIN, 0, INT64_MAX], dtype=np.int64)
    columns = {"x": np.array([1.0, 2.0, 3.0, 4.0])}
    ours = encode_ilp("t", columns, at=at)
    assert ours.split(b"\n")[1] == b"t x=2.0"
    assert ours == client_dataframe("t", columns, at)
    assert ours == client_rows("t", columns, at)
    assert encode_ilp("t", columns, at=at.view("datetime64[ns]")) == ours


def test_unsorted_timestamps_are_accepted() -> None:
    columns, at = ohlcv(100, seed=6)
    shuffled = np.random.default_rng(6).permutation(at)
    ours = encode_ilp("t", columns, symbols=["symbol"], at=shuffled)
    assert ours == client_dataframe("t", columns, shuffled, ("symbol",))


def test_strided_readonly_foreign_and_pandas_inputs() -> None:
    columns, at = ohlcv(400, seed=10)
    expected = encode_ilp(
        "t", {k: v[::2] for k, v in columns.items()}, symbols=["symbol"], at=at[::2]
    )
    frozen = {k: v[::2].copy() for k, v in columns.items()}
    for array in frozen.values():
        array.flags.writeable = False
    assert encode_ilp("t", frozen, symbols=["symbol"], at=at[::2]) == expected
    foreign = {
        k: (v[::2].astype(">f8") if v.dtype.kind == "f" else v[::2]) for k, v in columns.items()
    }
    assert encode_ilp("t", foreign, symbols=["symbol"], at=at[::2].astype(">i8")) == expected
    series = {k: pd.Series(v[::2]) for k, v in columns.items()}
    series["symbol"] = series["symbol"].astype("string")  # pandas' own strings, pd.NA nulls
    assert encode_ilp("t", series, symbols=["symbol"], at=pd.Series(at[::2])) == expected
    assert expected == client_dataframe(
        "t", {k: v[::2] for k, v in columns.items()}, at[::2], ("symbol",)
    )


def test_empty_input() -> None:
    empty = {"x": np.zeros(0), "s": np.zeros(0, dtype=object)}
    assert encode_ilp("t", empty, symbols=["s"], at=np.zeros(0, dtype=np.int64)) == b""
    assert encode_ilp("t", {}, at=np.zeros(0, dtype=np.int64)) == b""
    assert client_dataframe("t", empty, np.zeros(0, dtype=np.int64), ("s",)) == b""


column_values = st.fixed_dictionaries(
    {
        "sym": st.one_of(st.none(), st.text(max_size=12)),
        "f": st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
        "i": st.integers(INT64_MIN, INT64_MAX),
        "b": st.booleans(),
        "s": st.one_of(st.none(), st.text(max_size=20)),
        "at": st.one_of(st.integers(0, INT64_MAX), st.just(INT64_MIN)),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(column_values, max_size=25), table=st.sampled_from(["t", "a b", "x=y.z"]))
def test_generated_rows_match_client(rows: list[dict[str, Any]], table: str) -> None:
    columns = {
        "sym": np.array([r["sym"] for r in rows], dtype=object),
        "f": np.array([r["f"] for r in rows], dtype=np.float64),
        "i": np.array([r["i"] for r in rows], dtype=np.int64),
        "b": np.array([r["b"] for r in rows], dtype=bool),
        "s": np.array([r["s"] for r in rows], dtype=object),
    }
    at = np.array([r["at"] for r in rows], dtype=np.int64)
    ours = encode_ilp(table, columns, symbols=["sym"], at=at)
    assert ours == client_rows(table, columns, at, ("sym",))
    if any(r["sym"] is not None for r in rows):
        # The client refuses a symbol column holding no string at all (its dtype is unknown).
        assert ours == client_dataframe(table, columns, at, ("sym",))


# --- names: the client's rules -------------------------------------------------------------


def client_accepts(table: str, column: str) -> bool:
    try:
        Buffer(protocol_version=1).row(table, columns={column: 1}, at=TimestampNanos(1))
    except QuestDBError:
        return False
    return True


def ours_accepts(table: str, column: str) -> bool:
    try:
        encode_ilp(table, {column: np.array([1])}, at=np.array([1]))
    except ValueError:
        return False
    return True


BAD_CHARS = list("?,'\"\\/:)(+*%~\r\n\0\x01\x08\t\x0b\x0c\x0e\x0f\x7f\ufeff")


@pytest.mark.parametrize(
    "table",
    ["", ".a", "a.", "a..b", "t" * (MAX_NAME_LEN + 1), "é" * 64, "a\ud800"]
    + [f"a{c}b" for c in BAD_CHARS],
)
def test_invalid_table_names_are_refused_like_client(table: str) -> None:
    assert not client_accepts(table, "x")
    with pytest.raises(ValueError, match=r"^table: "):
        encode_ilp(table, {"x": np.array([1])}, at=np.array([1]))


@pytest.mark.parametrize(
    "column",
    ["", "a.b", "a-b", ".", "c" * (MAX_NAME_LEN + 1), "é" * 64] + [f"a{c}b" for c in BAD_CHARS],
)
def test_invalid_column_names_are_refused_like_client(column: str) -> None:
    assert not client_accepts("t", column)
    with pytest.raises(ValueError, match=r"^columns: "):
        encode_ilp("t", {column: np.array([1])}, at=np.array([1]))


@pytest.mark.parametrize(
    ("table", "column"),
    [("a.b", "c"), ("a b", "c d"), ("a=b", "c=d"), ("a-b", "é"), ("t" * MAX_NAME_LEN, "\x10")],
)
def test_unusual_valid_names_are_accepted_like_client(table: str, column: str) -> None:
    assert client_accepts(table, column) and ours_accepts(table, column)
    at = np.array([1])
    columns = {column: np.array([1])}
    assert encode_ilp(table, columns, at=at) == client_dataframe(table, columns, at)


name_chars = st.sampled_from(list("ab.-_ é=,") + BAD_CHARS)


@settings(max_examples=300, deadline=None)
@given(table=st.text(name_chars, max_size=6), column=st.text(name_chars, max_size=6))
def test_name_rules_agree_with_client(table: str, column: str) -> None:
    assert ours_accepts(table, column) == client_accepts(table, column)


# --- bad input -----------------------------------------------------------------------------


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match=r"columns: column 'y' has shape \(3,\), expected \(2,\)"):
        encode_ilp("t", {"x": np.ones(2), "y": np.ones(3)}, at=np.arange(2))
    with pytest.raises(ValueError, match=r"columns: column 'x' has shape \(2, 2\)"):
        encode_ilp("t", {"x": np.ones((2, 2))}, at=np.arange(2))


def test_unknown_or_non_string_symbols_are_refused() -> None:
    columns = {"x": np.ones(2), "s": np.array(["a", "b"])}
    with pytest.raises(ValueError, match=r"symbols: 'nope' is not a column"):
        encode_ilp("t", columns, symbols=["nope"], at=np.arange(2))
    with pytest.raises(ValueError, match=r"symbols: column 'x' has dtype float64"):
        encode_ilp("t", columns, symbols=["x"], at=np.arange(2))
    with pytest.raises(TypeError, match=r"symbols: expected a collection"):
        encode_ilp("t", columns, symbols="s", at=np.arange(2))


def test_bad_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match=r"at: row 1: timestamp -5 is negative"):
        encode_ilp("t", {"x": np.ones(3)}, at=np.array([1, -5, 2]))
    with pytest.raises(ValueError, match=r"at: expected int64 nanoseconds"):
        encode_ilp("t", {"x": np.ones(2)}, at=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"at: expected a 1-D array"):
        encode_ilp("t", {"x": np.ones(2)}, at=np.ones((2, 1), dtype=np.int64))


def test_bad_values_are_refused_naming_column_and_row() -> None:
    at = np.arange(3)
    with pytest.raises(ValueError, match=r"column 's' row 1: expected str or None, got int 5"):
        encode_ilp("t", {"s": np.array(["a", 5, "b"], dtype=object)}, at=at)
    with pytest.raises(ValueError, match=r"column 's' row 2: 'b\\ud800' cannot be encoded"):
        encode_ilp("t", {"s": np.array(["a", None, "b\ud800"], dtype=object)}, at=at)
    with pytest.raises(ValueError, match=r"column 'u' row 1: 9223372036854775808 does not fit"):
        encode_ilp("t", {"u": np.array([0, 2**63, 1], dtype=np.uint64)}, at=at)
    for dtype in ("float16", "complex128", "datetime64[ns]", "S3"):
        pattern = re.escape(f"column 'v' has unsupported dtype {np.dtype(dtype)}")
        with pytest.raises(ValueError, match=pattern):
            encode_ilp("t", {"v": np.zeros(3, dtype=dtype)}, at=at)


def test_rows_with_nothing_to_write_are_refused() -> None:
    columns = {"s": np.array(["a", None], dtype=object), "f": np.array(["b", None], object)}
    with pytest.raises(ValueError, match=r"columns: row 1: every column is null"):
        encode_ilp("t", columns, symbols=["s"], at=np.arange(2))
    with pytest.raises(ValueError, match=r"columns: no columns"):
        encode_ilp("t", {}, at=np.arange(2))


def test_wrong_argument_types_are_refused() -> None:
    with pytest.raises(TypeError, match=r"columns: expected a mapping"):
        encode_ilp("t", [np.ones(1)], at=np.arange(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"table: table names must be str"):
        encode_ilp(b"t", {"x": np.ones(1)}, at=np.arange(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"columns: column names must be str"):
        encode_ilp("t", {1: np.ones(1)}, at=np.arange(1))  # type: ignore[dict-item]


# --- the kernels without numba -------------------------------------------------------------

_PURE_PYTHON_SCRIPT = """
import numpy as np
from engine import encode_ilp
cols = {
    "s": np.array(["a b", None, "\\u00e9"], dtype=object),
    "x": np.array([100.03, -0.0, 1.5e-7]),
    "i": np.array([-2**63, 5, 2**63 - 1]),
    "b": np.array([True, False, True]),
    "f": np.array(['q"' * 9, "w", None], dtype=object),
}
print(encode_ilp("t", cols, symbols=["s"], at=np.array([1, 2, -2**63])).hex())
"""


def test_disable_jit_runs_the_same_code_in_python() -> None:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _PURE_PYTHON_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    cols = {
        "s": np.array(["a b", None, "é"], dtype=object),
        "x": np.array([100.03, -0.0, 1.5e-7]),
        "i": np.array([INT64_MIN, 5, INT64_MAX]),
        "b": np.array([True, False, True]),
        "f": np.array(['q"' * 9, "w", None], dtype=object),
    }
    expected = encode_ilp("t", cols, symbols=["s"], at=np.array([1, 2, INT64_MIN]))
    assert bytes.fromhex(run.stdout.strip()) == expected
