"""``engine.parse_ilp`` against its oracle: the bytes the official QuestDB client writes (text
ILP, protocol version 1) for random rows parse back to exactly the values written; and against
``engine.encode_ilp``, whose mirror it is. Then InfluxDB's own forms, precisions, and every
malformed line, each refused naming its line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.ilp import CHUNK_ROWS, _escape_unquoted, encode_ilp
from engine.ilp_parse import ColumnType, LineProtocolError, Table, parse_ilp, warm_up
from tests.engine.test_ilp import NASTY, ROOT, T0, ohlcv, special_floats

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Buffer, ServerTimestamp, TimestampMicros, TimestampNanos

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)
NOW = 1_768_000_000_123_456_789  # the default timestamp the tests hand the parser


def only(tables: list[Table]) -> Table:
    assert len(tables) == 1, [t.measurement for t in tables]
    return tables[0]


def rows_of(table: Table) -> list[dict[str, Any]]:
    """Each row as ``{key: value}`` of the keys it has (the parsed view of one line)."""
    columns = {name: column.tolist() for name, column in table.columns.items()}
    return [
        {name: values[i] for name, values in columns.items() if values[i] is not None}
        for i in range(len(table))
    ]


def same_float(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


# --- the QuestDB client's bytes, parsed back -----------------------------------------------

# Text the client writes and a measurement can hold: no NUL (Postgres text cannot hold it),
# no lone surrogate (not UTF-8).
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=16)
nasty_text = st.one_of(text, st.sampled_from([s for s in NASTY if "\x00" not in s]))
# Names the client accepts, with the characters that need escaping in ILP.
table_names = st.sampled_from(["t", "my table", "a=b", "x y=z é", "trades.v2", "漢字"])
column_names = st.sampled_from(["f", "price x", "a=b", "é ü", "sym bol", "tag=1 2"])

row_strategy = st.fixed_dictionaries(
    {
        "sym": st.one_of(st.none(), nasty_text),
        "tag2": st.one_of(st.none(), st.sampled_from(["a", "b c", "d,e", "f=g", "h\\i", "j\nk"])),
        "f": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        "i": st.one_of(st.none(), st.integers(INT64_MIN, INT64_MAX)),
        "b": st.one_of(st.none(), st.booleans()),
        "s": st.one_of(st.none(), nasty_text),
        "us": st.one_of(st.none(), st.integers(0, 2**62 // 1000)),
        "at": st.one_of(st.none(), st.integers(0, INT64_MAX)),
    }
)


def client_bytes(table: str, rows: list[dict[str, Any]], names: dict[str, str]) -> bytes:
    buffer = Buffer(protocol_version=1)
    for row in rows:
        symbols = {names[k]: row[k] for k in ("sym", "tag2") if row[k] is not None}
        columns: dict[str, Any] = {names[k]: row[k] for k in ("f", "i", "b", "s")}
        columns[names["us"]] = None if row["us"] is None else TimestampMicros(row["us"])
        if not symbols and all(v is None for v in columns.values()):
            columns[names["i"]] = 0
            row["i"] = 0
        at = ServerTimestamp if row["at"] is None else TimestampNanos(row["at"])
        buffer.row(table, symbols=symbols, columns=columns, at=at)
    return bytes(buffer)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row_strategy, min_size=1, max_size=30),
    table=table_names,
    picked=st.permutations(["f", "price x", "a=b", "é ü", "sym bol", "tag=1 2", "s"]),
)
def test_client_rows_parse_back_to_the_values_written(
    rows: list[dict[str, Any]], table: str, picked: list[str]
) -> None:
    names = dict(zip(["sym", "tag2", "f", "i", "b", "s", "us"], picked, strict=True))
    body = client_bytes(table, rows, names)
    parsed = only(parse_ilp(body, default_ns=NOW))
    assert parsed.measurement == table
    assert len(parsed) == len(rows)
    assert parsed.lines[0] == 1 and bool(np.all(np.diff(parsed.lines) >= 1))
    assert parsed.lines[-1] == body.count(b"\n") - _newlines(rows[-1:])
    assert parsed.timestamp.tolist() == [NOW if r["at"] is None else r["at"] for r in rows]
    types = {
        "sym": ColumnType.TAG,
        "tag2": ColumnType.TAG,
        "f": ColumnType.FLOAT,
        "i": ColumnType.INTEGER,
        "b": ColumnType.BOOLEAN,
        "s": ColumnType.STRING,
        "us": ColumnType.TIMESTAMP,
    }
    for key, name in names.items():
        written = [r[key] for r in rows]
        if all(v is None for v in written):
            assert name not in parsed.columns
            continue
        column = parsed.columns[name]
        assert column.type == types[key]
        got = column.tolist()
        if key == "us":
            written = [None if v is None else v * 1000 for v in written]
        if key == "f":
            assert all(
                (w is None and g is None) or (w is not None and g is not None and same_float(w, g))
                for w, g in zip(written, got, strict=True)
            ), (written, got)
        else:
            assert got == written
    # Tags come first, as the client writes them.
    kinds = [c.type for c in parsed.columns.values()]
    assert kinds == sorted(kinds, key=lambda kind: kind != ColumnType.TAG)


def _newlines(rows: list[dict[str, Any]]) -> int:
    """Newlines inside the rows' values (the client escapes them)."""
    return sum(
        str(r[k]).count("\n") for r in rows for k in ("sym", "tag2", "s") if r[k] is not None
    )


name_text = st.text(st.sampled_from(list(' ,=\\"xé漢\t#')), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    measurement=name_text.filter(lambda n: not n.startswith(("#", "\t"))),
    tag=st.tuples(name_text, st.text(st.sampled_from(list(" ,=\\x\n")), max_size=6)),
    field=name_text,
    value=st.one_of(st.integers(INT64_MIN, INT64_MAX), st.booleans(), st.text(max_size=8)),
)
def test_escaped_names_with_commas_spaces_and_equals_parse_back(
    measurement: str, tag: tuple[str, str], field: str, value: Any
) -> None:
    """Names the QuestDB client would refuse (commas) but InfluxDB writes, escaped the client's
    way (``engine.ilp._escape_unquoted``: a backslash before space, comma, ``=``, backslash,
    newline and carriage return)."""
    if "\x00" in str(value) or any(0xD800 <= ord(c) <= 0xDFFF for c in str(value)):
        return
    key, tag_value = tag
    if key == field:
        field += "2"
    if isinstance(value, bool):
        text = "t" if value else "f"
    elif isinstance(value, int):
        text = f"{value}i"
    else:
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    line = (
        escape(measurement) + b"," + escape(key) + b"=" + escape(tag_value) + b" "
        + escape(field) + b"=" + text.encode() + b" 42\n"
    )  # fmt: skip
    parsed = only(parse_ilp(line))
    assert parsed.measurement == measurement and parsed.timestamp.tolist() == [42]
    assert rows_of(parsed) == [{key: tag_value, field: value}]


def escape(name: str) -> bytes:
    return _escape_unquoted(name.encode())


def test_line_numbers_count_every_newline() -> None:
    buffer = Buffer(protocol_version=1)
    buffer.row("t", columns={"s": "one\ntwo\nthree"}, at=TimestampNanos(1))
    buffer.row("t", symbols={"k": "a\nb"}, columns={"x": 1.5}, at=TimestampNanos(2))
    buffer.row("t", columns={"x": 2.5}, at=TimestampNanos(3))
    body = b"# a comment\n\n" + bytes(buffer)
    assert only(parse_ilp(body)).lines.tolist() == [3, 6, 8]


def test_every_kind_of_float_parses_back_bit_for_bit() -> None:
    values = special_floats(seed=21, n_random=20_000)
    at = np.arange(values.size, dtype=np.int64)
    body = encode_ilp("t", {"x": values}, at=at)
    parsed = only(parse_ilp(body)).columns["x"].values
    nan = np.isnan(values)
    assert np.array_equal(np.isnan(parsed), nan)
    assert np.array_equal(parsed[~nan].view(np.uint64), values[~nan].view(np.uint64))


def test_decimal_text_of_every_length_parses_like_python() -> None:
    """Texts no client would write (long, padded, exponent forms) against ``float``."""
    rng = np.random.default_rng(22)
    texts = [
        "0", "-0", "+1", "1.", ".5", "00012.5000", "1e308", "1e309", "-1e400", "4.9e-324",
        "2.4703282292062327e-324", "2.4703282292062328e-324", "1e-400", "123456789012345678901",
        "0.000000000000000000000000000001", "9007199254740993", "9007199254740993.0000000001",
        "1.7976931348623158e308", "2.2250738585072011e-308", "1E5", "1e+5", "12345678901234567890e-5",
    ]  # fmt: skip
    for _ in range(3000):
        digits = "".join(rng.choice(list("0123456789"), int(rng.integers(1, 30))))
        point = int(rng.integers(0, len(digits) + 1))
        texts.append(f"{digits[:point]}.{digits[point:]}e{int(rng.integers(-340, 320))}")
    body = "".join(f"t x={text}\n" for text in texts).encode()
    parsed = only(parse_ilp(body)).columns["x"].values.tolist()
    assert all(same_float(got, float(text)) for got, text in zip(parsed, texts, strict=True))


def test_engine_exports_parse_ilp() -> None:
    assert engine.parse_ilp is parse_ilp
    assert warm_up() >= 0.0  # what a hub runs at start: every kernel loaded


# --- the mirror of encode_ilp --------------------------------------------------------------


def test_encoded_ohlcv_parses_back_to_its_columns() -> None:
    columns, at = ohlcv(3 * CHUNK_ROWS + 17, seed=23)
    parsed = only(parse_ilp(encode_ilp("ohlcv", columns, symbols=["symbol"], at=at)))
    assert parsed.measurement == "ohlcv" and parsed.timestamp.tolist() == at.tolist()
    assert list(parsed.columns) == list(columns)
    assert parsed.columns["symbol"].tolist() == columns["symbol"].tolist()
    for name in ("open", "high", "low", "close", "volume"):
        column = parsed.columns[name]
        assert column.type == ColumnType.FLOAT and column.valid is None
        assert np.array_equal(column.values, columns[name])


def test_nulls_become_missing_values_and_sparse_columns() -> None:
    columns = {
        "s": np.array(["a", None, "b", None], dtype=object),
        "x": np.array([1.5, 2.5, 3.5, 4.5]),
        "note": np.array([None, 'q"uote', None, "back\\slash"], dtype=object),
        "n": np.array([1, -2, 3, INT64_MIN]),
        "ok": np.array([True, False, True, False]),
    }
    at = np.array([T0, INT64_MIN, T0 + 2, T0 + 3])
    parsed = only(parse_ilp(encode_ilp("t", columns, symbols=["s"], at=at), default_ns=NOW))
    assert parsed.timestamp.tolist() == [T0, NOW, T0 + 2, T0 + 3]
    assert parsed.columns["s"].tolist() == ["a", None, "b", None]
    assert parsed.columns["s"].valid is not None
    assert parsed.columns["note"].tolist() == [None, 'q"uote', None, "back\\slash"]
    assert parsed.columns["n"].tolist() == [1, -2, 3, INT64_MIN]
    assert parsed.columns["ok"].tolist() == [True, False, True, False]


def test_measurements_interleave_and_keep_their_own_columns() -> None:
    body = (
        b"cpu,host=a usage=0.5 1\n"
        b"mem,host=a free=10i 2\n"
        b"cpu,host=b usage=0.7,steal=0.1 3\n"
        b"mem free=11i,swap=t 4\n"
    )
    cpu, mem = parse_ilp(body)
    assert (cpu.measurement, mem.measurement) == ("cpu", "mem")
    assert cpu.lines.tolist() == [1, 3] and mem.lines.tolist() == [2, 4]
    assert rows_of(cpu) == [
        {"host": "a", "usage": 0.5},
        {"host": "b", "usage": 0.7, "steal": 0.1},
    ]
    assert rows_of(mem) == [{"host": "a", "free": 10}, {"free": 11, "swap": True}]
    assert cpu.columns["steal"].first_line == 3


# --- InfluxDB's forms ----------------------------------------------------------------------


def test_influx_forms() -> None:
    body = (
        b"# comment\r\n"
        b"\r\n"
        b"   weather,location=us\\,midwest\\ x,sea\\=level=0 temperature=82,hum=71i,ok=T 1\r\n"
        b"weather\\ x,k\\\\=a\\b t=true,u=18446744073709551615u 2\n"
        b'weather\\ x,k\\\\=c  f=FALSE,s="say \\"hi\\"\\\\ \\n",e=-1.5E-3   3  \n'
        b"weather\\ x,k\\\\=d\n"  # tags only, no timestamp
        b"weather\\ x,k\\\\=e 7\n"  # tags only, a timestamp
    )
    with pytest.raises(LineProtocolError, match="unsigned"):
        parse_ilp(body)
    body = body.replace(b"18446744073709551615u", b"9223372036854775807u")
    weather, spaced = parse_ilp(body, default_ns=NOW)
    assert weather.measurement == "weather" and weather.lines.tolist() == [3]
    assert rows_of(weather) == [
        {"location": "us,midwest x", "sea=level": "0", "temperature": 82.0, "hum": 71, "ok": True}
    ]
    assert spaced.measurement == "weather x"
    assert spaced.timestamp.tolist() == [2, 3, NOW, 7]
    # A backslash before anything but the six escaped bytes is itself (InfluxDB's rule).
    assert spaced.columns["k\\"].tolist() == ["a\\b", "c", "d", "e"]
    assert spaced.columns["s"].tolist() == [None, 'say "hi"\\ \\n', None, None]
    assert spaced.columns["e"].tolist() == [None, -0.0015, None, None]
    assert spaced.columns["u"].type == ColumnType.INTEGER
    assert spaced.columns["f"].tolist() == [None, False, None, None]


@pytest.mark.parametrize(
    ("precision", "factor"),
    [("n", 1), ("ns", 1), ("u", 1_000), ("us", 1_000), ("ms", 10**6), ("s", 10**9),
     ("m", 60 * 10**9), ("h", 3600 * 10**9)],
)  # fmt: skip
def test_precisions_scale_timestamps(precision: str, factor: int) -> None:
    body = b"t x=1 17\nt x=2 -3\nt x=3 5t\nt x=4 6n\nt x=5\n"
    parsed = only(parse_ilp(body, precision=precision, default_ns=NOW))
    assert parsed.timestamp.tolist() == [17 * factor, -3 * factor, 5_000, 6, NOW]


def test_a_bad_precision_is_refused() -> None:
    with pytest.raises(ValueError, match=r"precision: expected one of n, ns, u"):
        parse_ilp(b"t x=1", precision="d")


def test_empty_and_blank_bodies_have_no_tables() -> None:
    assert parse_ilp(b"") == []
    assert parse_ilp(b"\n\n  \r\n# only a comment\n") == []


# --- malformed lines -----------------------------------------------------------------------

MALFORMED = [
    (b"cpu", 1, "no fields"),
    (b"ok x=1\ncpu ", 2, "no fields"),
    (b"ok x=1\n,t=1 x=1", 2, "no measurement"),
    (b"cpu,=a x=1", 1, "empty tag or field key"),
    (b"cpu,t x=1", 1, "tag 't' has no '=' and value"),
    (b"cpu x", 1, "field 'x' has no '=' and value"),
    (b"cpu x=1,=2", 1, "empty tag or field key"),
    (b"cpu x=", 1, "field 'x=' has no value"),
    (b"cpu x=,y=1", 1, "field 'x=' has no value"),
    (b"ok x=1\n\nok x=1\ncpu x=abc", 4, "invalid field value in 'x=abc'"),
    (b"cpu x=1.2.3", 1, "invalid field value"),
    (b"cpu x=1e", 1, "invalid field value"),
    (b"cpu x=-", 1, "invalid field value"),
    (b"cpu x=nan", 1, "invalid field value"),
    (b"cpu x=-NaN", 1, "invalid field value"),
    (b"cpu x=1ii", 1, "invalid field value"),
    (b"cpu x=-1u", 1, "invalid field value"),
    (b"cpu x=9223372036854775808i", 1, "outside int64"),
    (b"cpu x=-9223372036854775809i", 1, "outside int64"),
    (b"cpu x=99999999999999999999999i", 1, "outside int64"),
    (b"cpu x=9223372036854775808u", 1, "above 2**63 - 1"),
    (b"cpu x=9223372036854775807t", 1, "outside the nanoseconds"),
    (b'ok x=1\ncpu x="open\nstill open', 2, "no closing quote"),
    (b'cpu x="a"b', 1, "after the closing quote"),
    (b"cpu x=1 12a", 1, "invalid timestamp '12a'"),
    (b"cpu x=1 99999999999999999999", 1, "outside the nanoseconds"),
    (b"cpu x=1 1 2", 1, "unexpected '2' after the timestamp"),
    (b"cpu x==\x10\x00\x00\x00\x00\x00\x00\xf8?", 1, "binary field value"),
    (b"ok x=1\ncpu,t=\xff x=1", 2, "not valid UTF-8"),
    (b'cpu x="\xed\xa0\x80"', 1, "not valid UTF-8"),  # a surrogate
    (b'cpu x="\xc0\xaf"', 1, "not valid UTF-8"),  # overlong
    (b'cpu x="a\x00b"', 1, "a NUL byte"),
    (b"ok x=1\nok x=1i", 2, "'x' is an integer field here but a float field on line 1"),
    (b"ok,x=1 y=1\nok y=1,x=2", 2, "'x' is a float field here but a tag on line 1"),
    (b"ok x=1,x=2", 1, "'x' appears twice in the line"),
    (b"ok,x=a,x=b y=1", 1, "'x' appears twice in the line (a tag and a tag)"),
    (b"ok,x=a y=1,x=2", 1, "'x' appears twice in the line (a tag and a float field)"),
]


@pytest.mark.parametrize(("body", "line", "reason"), MALFORMED)
def test_malformed_lines_are_refused_naming_the_line(body: bytes, line: int, reason: str) -> None:
    with pytest.raises(LineProtocolError) as caught:
        parse_ilp(body, precision="n")
    assert caught.value.line == line, caught.value
    assert reason in caught.value.reason, caught.value.reason
    assert str(caught.value).startswith(f"line {line}: ")


def test_the_first_bad_line_is_named_when_several_are_bad() -> None:
    body = b"ok x=1\nok x=2\nbad\nok x=\xff\nbad again"
    with pytest.raises(LineProtocolError) as caught:
        parse_ilp(body)
    assert caught.value.line == 3 and caught.value.text == "bad"
    body = b'ok x=1\nok x="\xff"\nbad'
    with pytest.raises(LineProtocolError) as caught:
        parse_ilp(body)
    assert caught.value.line == 2


def test_an_error_quotes_a_long_line_shortened() -> None:
    body = b"ok x=1\ncpu x=" + b"9" * 500 + b"z"
    with pytest.raises(LineProtocolError) as caught:
        parse_ilp(body)
    assert caught.value.line == 2
    assert caught.value.text.startswith("cpu x=999") and caught.value.text.endswith("...")
    assert len(caught.value.text) < 100 and len(caught.value.reason) < 400


def test_many_distinct_names_grow_the_tables() -> None:
    """Thousands of measurements and keys: the name tables and the column table grow as the
    scan goes, and each key lands in its own measurement."""
    lines = [f"m{i % 700},tag{i % 300}=v{i} f{i % 1100}={i}i {i}" for i in range(5000)]
    tables = parse_ilp("\n".join(lines).encode())
    assert len(tables) == 700
    seen = 0
    for table in tables:
        for i, row in zip(table.timestamp.tolist(), rows_of(table), strict=True):
            assert table.measurement == f"m{i % 700}"
            assert row == {f"tag{i % 300}": f"v{i}", f"f{i % 1100}": i}
            seen += 1
    assert seen == 5000


def test_wrong_argument_types_are_refused() -> None:
    with pytest.raises(TypeError, match=r"body: expected bytes or a 1-D uint8 array"):
        parse_ilp(np.zeros(3, dtype=np.int64))


# --- the kernels without numba -------------------------------------------------------------

_PURE_PYTHON_SCRIPT = """
import json
from engine import parse_ilp
body = b't,s=a\\\\ b x=1.5,y=-2i,z="q\\\\"",ok=f,w=1e400 17\\nt,s=c x=0.1 5t\\n'
(table,) = parse_ilp(body, default_ns=0)
print(json.dumps({k: c.tolist() for k, c in table.columns.items()} | {"at": table.timestamp.tolist()}))
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
    assert json.loads(run.stdout) == {
        "s": ["a b", "c"],
        "x": [1.5, 0.1],
        "y": [-2, None],
        "z": ['q"', None],
        "ok": [False, None],
        "w": [float("inf"), None],
        "at": [17, 5000],
    }
