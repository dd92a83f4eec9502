"""Numba kernels behind ``engine.ilp_parse.parse_ilp``: the line scanner, decimal-to-double
conversion, and the grouping of values into columns.

``scan_lines_nb`` reads InfluxDB line protocol as the QuestDB client writes it (and as InfluxDB
clients do): one pass over the bytes, unescaping names and values into one buffer, interning
measurement names and keys in hash tables, parsing each value by its form. It stops at the
first error and reports where. ``group_columns_nb`` then gives each (measurement, key) pair a
column, each line a row of its measurement, and finds type conflicts and repeated keys.

Floats are converted exactly (correctly rounded, as ``float(text)``): Clinger's fast path for
short mantissas and small exponents, else the Eisel-Lemire algorithm (as Go's ``strconv`` and
``fast_float`` implement it) over 128-bit truncated powers of ten computed here from Python
integers; the rare number neither can decide (more than 19 significant digits, a halfway
case, an exponent past the table) is flagged and converted by Python.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine._rawmem import JIT_DISABLED, address_of, load1, load_i64, load_u64, store1, store8


class EntryKindT(NamedTuple):
    Tag: int = 0
    Float: int = 1
    Int: int = 2
    Bool: int = 3
    String: int = 4
    Timestamp: int = 5  # a field written ``123t`` (microseconds) or ``123n`` (nanoseconds)
    SlowFloat: int = 6  # a float for Python to convert: the span of its text in the body


EntryKind = EntryKindT()


class ErrorCodeT(NamedTuple):
    Ok: int = 0
    NoMeasurement: int = 1
    NoFields: int = 2
    EmptyKey: int = 3
    TagWithoutValue: int = 4
    FieldWithoutValue: int = 5
    EmptyFieldValue: int = 6
    BadFieldValue: int = 7
    IntRange: int = 8
    UintRange: int = 9
    Unterminated: int = 10
    BadTimestamp: int = 11
    TimestampRange: int = 12
    Trailing: int = 13
    Binary: int = 14
    AfterString: int = 15
    Utf8: int = 16
    Nul: int = 17
    Duplicate: int = 18
    Conflict: int = 19
    Names: int = 20  # more distinct measurement names or keys than a batch may hold


ErrorCode = ErrorCodeT()

INT64_MAX = np.iinfo(np.int64).max
_INT64_MAX_U = np.uint64(INT64_MAX)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U3 = np.uint64(3)
_U9 = np.uint64(9)
_U10 = np.uint64(10)
_U52 = np.uint64(52)
_U63 = np.uint64(63)
_X1FF = np.uint64(0x1FF)
_MANTISSA = np.uint64((1 << 52) - 1)
_SIGN = np.uint64(1 << 63)
_TWO53 = np.uint64(1 << 53)
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)

SP, TAB, LF, CR = 32, 9, 10, 13
COMMA, EQ, QUOTE, BACKSLASH, HASH = 44, 61, 34, 92, 35

# 128-bit truncated mantissas of 10**q for q in [_MIN_Q, _MAX_Q], normalised so the top bit is
# set, as (lo, hi) 64-bit halves: Go's ``detailedPowersOfTen``.
_MIN_Q = -348
_MAX_Q = 347
_MASK64 = (1 << 64) - 1


def _powers_of_ten() -> np.ndarray:
    table = np.empty((_MAX_Q - _MIN_Q + 1, 2), dtype=np.uint64)
    for q in range(_MIN_Q, _MAX_Q + 1):
        if q >= 0:
            value = 10**q
            bits = value.bit_length()
            value = value >> (bits - 128) if bits > 128 else value << (128 - bits)
        else:
            divisor = 10**-q
            value = (1 << (divisor.bit_length() + 127)) // divisor
        table[q - _MIN_Q, 0] = value & _MASK64
        table[q - _MIN_Q, 1] = value >> 64
    return table


POW10_128 = _powers_of_ten()
# Exact doubles 10**0 .. 10**22 (5**22 < 2**53): Clinger's fast path.
POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
# Distinct measurement names, and distinct keys, one batch may hold.
MAX_NAMES = 1 << 20

if JIT_DISABLED:

    def mul_64x64(a: Any, b: Any) -> tuple[np.uint64, np.uint64]:
        """Pure-Python stand-in so ``NUMBA_DISABLE_JIT=1`` still runs the kernels."""
        product = int(a) * int(b)
        return np.uint64(product >> 64), np.uint64(product & _MASK64)

    def leading_zeros(x: Any) -> int:
        return 64 - int(x).bit_length()

    def f64_of_bits(bits: Any) -> float:
        return float(struct.unpack("<d", struct.pack("<Q", int(bits)))[0])

else:

    @intrinsic
    def mul_64x64(typingctx: Any, a: Any, b: Any) -> Any:
        """The 128-bit product of two uint64 as (high, low) halves: one ``mul`` on x86-64."""
        sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)  # type: ignore[no-untyped-call]

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            i64, i128 = ir.IntType(64), ir.IntType(128)
            product = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
            high = builder.trunc(builder.lshr(product, ir.Constant(i128, 64)), i64)
            low = builder.trunc(product, i64)
            return context.make_tuple(builder, signature.return_type, (high, low))

        return sig, codegen

    @intrinsic
    def leading_zeros(typingctx: Any, x: Any) -> Any:
        """Leading zero bits of a uint64 (64 for 0)."""
        sig = types.int64(types.uint64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))

        return sig, codegen

    @intrinsic
    def f64_of_bits(typingctx: Any, bits: Any) -> Any:
        """The double whose IEEE-754 bit pattern is ``bits``."""
        sig = types.float64(types.uint64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.DoubleType())

        return sig, codegen


# -- numbers ----------------------------------------------------------------------------------
# The scanner's helpers read the body at raw addresses (``engine._rawmem``) and take no arrays:
# a numba call with an array argument increments and decrements its reference count around
# the call, atomics that would cost more than the parsing. Every read is bounded by the caller.


@njit(cache=True, nogil=True)
def eisel_lemire_nb(man: np.uint64, q: int, negative: bool) -> tuple[bool, float]:
    """``man * 10**q`` correctly rounded to a double, or (False, 0.0) when this algorithm
    cannot decide (the caller then converts the text another way). Go's ``eiselLemire64``."""
    if man == _U0:
        return True, -0.0 if negative else 0.0
    if q < _MIN_Q or q > _MAX_Q:
        return False, 0.0
    clz = leading_zeros(man)
    man = man << np.uint64(clz)
    biased = ((217706 * q) >> 16) + 64 + 1023 - clz
    if biased < 0:
        return False, 0.0  # far below the smallest normal double: Python decides
    ret_exp2 = np.uint64(biased)
    row = q - _MIN_Q
    x_hi, x_lo = mul_64x64(man, POW10_128[row, 1])
    if (x_hi & _X1FF) == _X1FF and x_lo + man < man:
        y_hi, y_lo = mul_64x64(man, POW10_128[row, 0])
        merged_hi, merged_lo = x_hi, x_lo + y_hi
        if merged_lo < x_lo:
            merged_hi += _U1
        if (merged_hi & _X1FF) == _X1FF and merged_lo + _U1 == _U0 and y_lo + man < man:
            return False, 0.0
        x_hi, x_lo = merged_hi, merged_lo
    msb = x_hi >> _U63
    mantissa = x_hi >> (msb + _U9)
    ret_exp2 -= _U1 ^ msb
    if x_lo == _U0 and (x_hi & _X1FF) == _U0 and (mantissa & _U3) == _U1:
        return False, 0.0  # halfway between two doubles: ties need the exact value
    mantissa += mantissa & _U1
    mantissa >>= _U1
    if (mantissa >> np.uint64(53)) > _U0:
        mantissa >>= _U1
        ret_exp2 += _U1
    if ret_exp2 - _U1 >= np.uint64(0x7FF - 1):
        return False, 0.0  # subnormal, or past the largest double
    bits = (ret_exp2 << _U52) | (mantissa & _MANTISSA)
    if negative:
        bits |= _SIGN
    return True, f64_of_bits(bits)


@njit(cache=True, nogil=True)
def _is_digit_nb(c: int) -> bool:
    return 48 <= c <= 57


@njit(cache=True, nogil=True)
def parse_float_nb(b: int, start: int, end: int) -> tuple[int, float]:
    """The decimal at addresses ``[b + start, b + end)`` (``[+-]digits[.digits][e[+-]digits]``,
    or ``NaN``, ``Infinity``, ``-Infinity`` as the QuestDB client writes them) as a double:
    status 0 and the value, 1 for text that is no float, 2 for a valid float this kernel
    leaves to Python (more than 19 significant digits, or what Eisel-Lemire cannot decide)."""
    i = start
    negative = False
    if i < end and (load1(b + i) == 45 or load1(b + i) == 43):  # - +
        negative = load1(b + i) == 45
        i += 1
    if end - i == 3 and load1(b + i) == 78:  # N
        if i == start and load1(b + i + 1) == 97 and load1(b + i + 2) == 78:  # NaN
            return 0, np.nan
        return 1, 0.0
    if end - i == 8 and load1(b + i) == 73:  # I
        if _is_word_nb(b, i, end, INFINITY):
            return 0, -np.inf if negative else np.inf
        return 1, 0.0
    man = _U0
    kept = 0  # significant digits in man
    exp10 = 0
    digits = 0
    truncated = False
    while i < end and _is_digit_nb(load1(b + i)):
        d = np.uint64(load1(b + i) - 48)
        digits += 1
        if man == _U0 and d == _U0:
            pass  # a leading zero
        elif kept < 19:
            man = man * _U10 + d
            kept += 1
        else:
            exp10 += 1
            truncated = truncated or d != _U0
        i += 1
    if i < end and load1(b + i) == 46:  # '.'
        i += 1
        while i < end and _is_digit_nb(load1(b + i)):
            d = np.uint64(load1(b + i) - 48)
            digits += 1
            if man == _U0 and d == _U0:
                exp10 -= 1
            elif kept < 19:
                man = man * _U10 + d
                kept += 1
                exp10 -= 1
            else:
                truncated = truncated or d != _U0
            i += 1
    if digits == 0:
        return 1, 0.0
    if i < end and (load1(b + i) == 101 or load1(b + i) == 69):  # e E
        i += 1
        exp_negative = False
        if i < end and (load1(b + i) == 45 or load1(b + i) == 43):
            exp_negative = load1(b + i) == 45
            i += 1
        if i == end:
            return 1, 0.0
        exponent = 0
        while i < end and _is_digit_nb(load1(b + i)):
            if exponent < 100_000:  # past any double either way; the text stays valid
                exponent = exponent * 10 + int(load1(b + i) - 48)
            i += 1
        exp10 += -exponent if exp_negative else exponent
    if i != end:
        return 1, 0.0
    if truncated:
        return 2, 0.0
    if man == _U0:
        return 0, -0.0 if negative else 0.0
    if man <= _TWO53 and -22 <= exp10 <= 22:
        value = float(man)
        value = value * POW10[exp10] if exp10 >= 0 else value / POW10[-exp10]
        return 0, -value if negative else value
    ok, value = eisel_lemire_nb(man, exp10, negative)
    return (0, value) if ok else (2, 0.0)


@njit(cache=True, nogil=True)
def parse_int_nb(b: int, start: int, end: int, signed: bool) -> tuple[int, int]:
    """The decimal at ``[b + start, b + end)`` as an int64: status 0 and the value, 1 for text
    that is no integer, 2 for one beyond int64 (``signed`` False also refuses a sign)."""
    i = start
    negative = False
    if signed and i < end and (load1(b + i) == 45 or load1(b + i) == 43):
        negative = load1(b + i) == 45
        i += 1
    if i == end:
        return 1, 0
    while i < end - 1 and load1(b + i) == 48:  # leading zeros
        i += 1
    if end - i > 19:  # 20 digits and more: past int64 (or not a number at all)
        for k in range(i, end):
            if not _is_digit_nb(load1(b + k)):
                return 1, 0
        return 2, 0
    magnitude = _U0  # 19 digits fit in a uint64
    while i < end:
        c = load1(b + i)
        if not _is_digit_nb(c):
            return 1, 0
        magnitude = magnitude * _U10 + np.uint64(c - 48)
        i += 1
    if magnitude > _INT64_MAX_U + (_U1 if negative else _U0):
        return 2, 0
    if negative:
        if magnitude == _INT64_MAX_U + _U1:
            return 0, -INT64_MAX - 1
        return 0, -np.int64(magnitude)  # type: ignore[return-value]
    return 0, np.int64(magnitude)  # type: ignore[return-value]


@njit(cache=True, nogil=True)
def _is_word_nb(b: int, start: int, end: int, word: tuple[int, ...]) -> bool:
    if end - start != len(word):
        return False
    for k in range(len(word)):
        if load1(b + start + k) != word[k]:
            return False
    return True


INFINITY = (73, 110, 102, 105, 110, 105, 116, 121)
_TRUE = ((116, 114, 117, 101), (84, 114, 117, 101), (84, 82, 85, 69))  # true True TRUE
_FALSE = ((102, 97, 108, 115, 101), (70, 97, 108, 115, 101), (70, 65, 76, 83, 69))


@njit(cache=True, nogil=True)
def parse_bool_nb(b: int, start: int, end: int) -> int:
    """1 for t, T, true, True, TRUE; 0 for f, F, false, False, FALSE; -1 for anything else."""
    length = end - start
    c = load1(b + start)
    if length == 1:
        return 1 if c == 116 or c == 84 else (0 if c == 102 or c == 70 else -1)
    if length == 4 and (c == 116 or c == 84):
        for word in _TRUE:
            if _is_word_nb(b, start, end, word):
                return 1
    if length == 5 and (c == 102 or c == 70):
        for word in _FALSE:  # type: ignore[assignment]
            if _is_word_nb(b, start, end, word):
                return 0
    return -1


@njit(cache=True, nogil=True)
def scale_nb(value: int, factor: int) -> tuple[bool, int]:
    """``value * factor`` unless it leaves int64."""
    if factor == 1:
        return True, value
    limit = INT64_MAX // factor
    if value > limit or value < -limit:
        return False, 0
    return True, value * factor


@njit(cache=True, nogil=True)
def field_value_nb(b: int, start: int, end: int) -> tuple[int, int, float, int]:
    """The unquoted field value at ``[b + start, b + end)``: (ErrorCode, EntryKind, the float,
    the integer); a SlowFloat leaves its span to the caller."""
    if end == start:
        return ErrorCode.EmptyFieldValue, 0, 0.0, 0
    if load1(b + start) == EQ:
        return ErrorCode.Binary, 0, 0.0, 0
    last = load1(b + end - 1)
    if last == 105 or last == 117:  # 'i' integer, 'u' unsigned
        status, value = parse_int_nb(b, start, end - 1, last == 105)
        if status == 1:
            return ErrorCode.BadFieldValue, 0, 0.0, 0
        if status == 2:
            return (ErrorCode.IntRange if last == 105 else ErrorCode.UintRange), 0, 0.0, 0
        return ErrorCode.Ok, EntryKind.Int, 0.0, value
    flag = parse_bool_nb(b, start, end)
    if flag >= 0:
        return ErrorCode.Ok, EntryKind.Bool, 0.0, flag
    if last == 116 or last == 110:  # 't' microseconds, 'n' nanoseconds
        status, value = parse_int_nb(b, start, end - 1, True)
        if status == 1:
            return ErrorCode.BadFieldValue, 0, 0.0, 0
        ok, value = scale_nb(value, 1000 if last == 116 else 1)
        if status == 2 or not ok:
            return ErrorCode.TimestampRange, 0, 0.0, 0
        return ErrorCode.Ok, EntryKind.Timestamp, 0.0, value
    status, number = parse_float_nb(b, start, end)
    if status == 1:
        return ErrorCode.BadFieldValue, 0, 0.0, 0
    if status == 2:
        return ErrorCode.Ok, EntryKind.SlowFloat, 0.0, 0
    return ErrorCode.Ok, EntryKind.Float, number, 0


@njit(cache=True, nogil=True)
def timestamp_nb(b: int, start: int, end: int, factor: int) -> tuple[int, int]:
    """A line's timestamp: an integer in the request's precision (``factor`` ns), or with a
    ``t`` (microseconds) or ``n`` (nanoseconds) suffix, as QuestDB's clients may write it."""
    last = load1(b + end - 1)
    if last == 116 or last == 110:
        factor = 1000 if last == 116 else 1
        end -= 1
    status, value = parse_int_nb(b, start, end, True)
    if status == 1:
        return ErrorCode.BadTimestamp, 0
    ok, value = scale_nb(value, factor)
    if status == 2 or not ok:
        return ErrorCode.TimestampRange, 0
    return ErrorCode.Ok, value


# -- text -------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def first_bad_byte_nb(body: np.ndarray) -> tuple[int, int]:
    """The position of the first byte that breaks UTF-8 (overlong forms, surrogates and code
    points past U+10FFFF included) or is NUL, and which (ErrorCode.Utf8 / Nul); (-1, Ok)."""
    n = body.size
    i = 0
    while i < n:
        c = body[i]
        if c < 0x80:
            if c == 0:
                return i, ErrorCode.Nul
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need = 1
            lo, hi = 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            need = 2
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            need = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return i, ErrorCode.Utf8
        if i + need >= n:
            return i, ErrorCode.Utf8
        second = body[i + 1]
        if second < lo or second > hi:
            return i, ErrorCode.Utf8
        for k in range(2, need + 1):
            if body[i + k] < 0x80 or body[i + k] > 0xBF:
                return i, ErrorCode.Utf8
        i += need + 1
    return -1, ErrorCode.Ok


@njit(cache=True, nogil=True)
def line_numbers_nb(body: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The 1-based line number of each position in ``starts`` (ascending): newlines before it."""
    numbers = np.empty(starts.size, dtype=np.int64)
    line = 1
    pos = 0
    for k in range(starts.size):
        target = starts[k]
        while pos < target:
            if body[pos] == LF:
                line += 1
            pos += 1
        numbers[k] = line
    return numbers


@njit(cache=True, nogil=True)
def at_eol_nb(b: int, pos: int, n: int) -> bool:
    """Whether ``pos`` ends a line: the end, a newline, or a carriage return before either."""
    if pos >= n:
        return True
    c = load1(b + pos)
    return c == LF or (c == CR and (pos + 1 == n or load1(b + pos + 1) == LF))


@njit(cache=True, nogil=True)
def read_name_nb(b: int, pos: int, n: int, t: int, o: int, stop_at_equals: bool) -> tuple[int, int]:
    """Unescape an unquoted name or tag value at ``pos`` to ``t + o`` up to an unescaped space,
    comma, line end (or ``=`` when ``stop_at_equals``); return both positions after it.

    A backslash before a space, comma, ``=``, backslash, newline or carriage return stands for
    that byte (the QuestDB client escapes those six); before anything else it is itself, as
    InfluxDB reads it.
    """
    while pos < n:
        c = load1(b + pos)
        if c == SP or c == COMMA or (stop_at_equals and c == EQ):
            break
        if c == LF or (c == CR and at_eol_nb(b, pos, n)):
            break
        if c == BACKSLASH and pos + 1 < n:
            e = load1(b + pos + 1)
            if e == SP or e == COMMA or e == EQ or e == BACKSLASH or e == LF or e == CR:
                store1(t + o, e)
                o += 1
                pos += 2
                continue
        store1(t + o, c)
        o += 1
        pos += 1
    return pos, o


@njit(cache=True, nogil=True)
def read_string_nb(b: int, pos: int, n: int, t: int, o: int) -> tuple[int, int]:
    """Unescape a quoted string field whose opening quote is at ``pos - 1`` to ``t + o``;
    return the position after its closing quote (-1 when there is none) and ``o`` after it.
    ``\\"`` and ``\\\\`` stand for ``"`` and ``\\``, a backslash before a newline or carriage
    return for that byte; any other backslash is itself. Newlines may appear as they are."""
    while pos < n:
        c = load1(b + pos)
        if c == QUOTE:
            return pos + 1, o
        if c == BACKSLASH and pos + 1 < n:
            e = load1(b + pos + 1)
            if e == QUOTE or e == BACKSLASH or e == LF or e == CR:
                store1(t + o, e)
                o += 1
                pos += 2
                continue
        store1(t + o, c)
        o += 1
        pos += 1
    return -1, o


# -- interning names --------------------------------------------------------------------------


class Names(NamedTuple):
    """An interning table: byte strings to dense codes, numbered by first appearance."""

    slots: np.ndarray  # int64, -1 empty, else a code; a power of two long
    hashes: np.ndarray  # uint64 per code
    offsets: np.ndarray  # int64 per code + 1: each name's bytes in ``data``
    data: np.ndarray  # uint8
    used: int  # names held


@njit(cache=True, nogil=True)
def hash_nb(t: int, start: int, end: int) -> np.uint64:
    h = _FNV_OFFSET
    for i in range(start, end):
        h = (h ^ np.uint64(load1(t + i))) * _FNV_PRIME
    return h ^ (h >> np.uint64(29))


@njit(cache=True, nogil=True)
def find_name_nb(
    table: tuple[int, int, int, int, int], t: int, start: int, end: int, h: np.uint64
) -> int:
    """The code of the bytes at ``[t + start, t + end)`` in a table given by the addresses of
    its arrays ``(slots, mask, hashes, offsets, data)``, or ``-1 - slot`` of the free slot."""
    slots, mask, hashes, offsets, data = table
    j: int = np.int64(h & np.uint64(mask))  # type: ignore[assignment]
    length = end - start
    while True:
        code = load_i64(slots + 8 * j)
        if code < 0:
            return -1 - j
        base = load_i64(offsets + 8 * code)
        if load_u64(hashes + 8 * code) == h and load_i64(offsets + 8 * code + 8) - base == length:
            same = True
            for k in range(length):
                if load1(data + base + k) != load1(t + start + k):
                    same = False
                    break
            if same:
                return code
        j = (j + 1) & mask


@njit(cache=True, nogil=True)
def new_names_nb(slots: int, codes: int, size: int) -> Names:
    return Names(
        np.full(slots, -1, dtype=np.int64),
        np.empty(codes, dtype=np.uint64),
        np.zeros(codes + 1, dtype=np.int64),
        np.empty(size, dtype=np.uint8),
        0,
    )


@njit(cache=True, nogil=True)
def grown_names_nb(names: Names, need: int) -> Names:
    """``names`` with room for at least one more name of ``need`` bytes."""
    slots, hashes, offsets, data, count = names
    grown = new_names_nb(2 * slots.size, 2 * hashes.size, max(2 * data.size, data.size + need))
    grown.hashes[:count] = hashes[:count]
    grown.offsets[: count + 1] = offsets[: count + 1]
    grown.data[: offsets[count]] = data[: offsets[count]]
    mask = grown.slots.size - 1
    for c in range(count):
        j = np.intp(hashes[c] & np.uint64(mask))
        while grown.slots[j] >= 0:
            j = (j + 1) & mask
        grown.slots[j] = c
    return Names(grown.slots, grown.hashes, grown.offsets, grown.data, count)


Table = tuple[int, int, int, int, int, int, int]  # the addresses and sizes of a Names' arrays


@njit(cache=True, nogil=True)
def table_nb(slots: np.ndarray, hashes: np.ndarray, offsets: np.ndarray, data: np.ndarray) -> Table:
    return (
        address_of(slots), slots.size, address_of(hashes), hashes.size, address_of(offsets),
        address_of(data), data.size,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def intern_nb(table: Table, count_at: int, t: int, start: int, end: int) -> int:
    """The code of the bytes at ``[t + start, t + end)`` in a name table (see ``table_nb``;
    its count at ``count_at``), added when new; -1 when the table has no room for it (the
    caller grows it and tries again)."""
    slots, n_slots, hashes, n_codes, offsets, data, size = table
    h = hash_nb(t, start, end)
    found = find_name_nb((slots, n_slots - 1, hashes, offsets, data), t, start, end, h)
    if found >= 0:
        return found
    count = load_i64(count_at)
    length = end - start
    base = load_i64(offsets + 8 * count)
    if count + 1 >= n_codes or 2 * (count + 1) > n_slots or base + length > size:
        return -1
    for k in range(length):
        store1(data + base + k, load1(t + start + k))
    store8(offsets + 8 * (count + 1), np.uint64(base + length))
    store8(hashes + 8 * count, h)
    store8(slots + 8 * (-1 - found), np.uint64(count))
    store8(count_at, np.uint64(count + 1))
    return count


# -- the scanner ------------------------------------------------------------------------------


class Scan(NamedTuple):
    """What ``scan_lines_nb`` found: per line, per entry (a tag or a field), the names."""

    error: tuple[int, int, int, int, int]  # code, line start, position, token start, token end
    line_start: np.ndarray  # int64: each line's first byte
    line_measurement: np.ndarray  # int32 code into ``measurements``
    line_ts: np.ndarray  # int64 nanoseconds
    entry_line: np.ndarray  # int32
    entry_key: np.ndarray  # int32 code into ``keys``
    entry_kind: np.ndarray  # int8 EntryKind
    entry_float: np.ndarray  # float64
    entry_int: np.ndarray  # int64: Int, Bool (0/1), Timestamp (ns); Tag/String/SlowFloat start
    entry_end: np.ndarray  # int64: Tag/String end in ``text``, SlowFloat end in the body
    measurements: Names
    keys: Names
    text: np.ndarray  # uint8: tag and string values, unescaped


@njit(cache=True, nogil=True)
def _counted(names: Names, count: int) -> Names:
    return Names(names.slots, names.hashes, names.offsets, names.data, count)


@njit(cache=True, nogil=True)
def _has_equals_nb(b: int, pos: int, n: int) -> bool:
    """Whether the token at ``pos`` holds an unescaped ``=`` (a field, not a timestamp)."""
    while pos < n:
        c = load1(b + pos)
        if c == EQ:
            return True
        if c == SP or c == COMMA or c == LF:
            return False
        pos += 2 if c == BACKSLASH else 1
    return False


# _scan_nb's state: where it is (a line start when it returns for room), and what it found.
_POS, _LINES, _ENTRIES, _TEXT, _NEED, _CODE, _START, _WHERE, _TOKEN, _TOKEN_END = range(10)
_ROOM_MEASUREMENTS = -1
_ROOM_KEYS = -2


@njit(cache=True, nogil=True)
def scan_lines_nb(
    body: np.ndarray, factor: int, default_ns: int, max_lines: int, max_entries: int
) -> Scan:
    """Parse every line of ``body`` (uint8), up to the first error.

    ``max_lines`` and ``max_entries`` bound the lines and the tags plus fields (newlines + 1
    and ``=`` bytes are enough). Timestamps without a unit suffix are in units of ``factor``
    nanoseconds; a line without one takes ``default_ns``. Blank lines, and lines whose first
    non-blank byte is ``#`` (comments), are skipped.

    The scan runs in ``_scan_nb``, which never replaces an array (a loop that may rebind an
    array variable pays reference-count atomics on every pass): when a name table is full it
    stops at the start of the line, the table is grown here, and the scan resumes there.
    """
    line_start = np.empty(max_lines, dtype=np.int64)
    line_measurement = np.empty(max_lines, dtype=np.int32)
    line_ts = np.empty(max_lines, dtype=np.int64)
    entry_line = np.empty(max_entries, dtype=np.int32)
    entry_key = np.empty(max_entries, dtype=np.int32)
    entry_kind = np.empty(max_entries, dtype=np.int8)
    entry_float = np.empty(max_entries, dtype=np.float64)
    entry_int = np.empty(max_entries, dtype=np.int64)
    entry_end = np.empty(max_entries, dtype=np.int64)
    text = np.empty(body.size + 1, dtype=np.uint8)
    measurements = new_names_nb(64, 16, 256)
    keys = new_names_nb(64, 16, 256)
    counts = np.zeros(2, dtype=np.int64)
    state = np.zeros(10, dtype=np.int64)
    while True:
        status = _scan_nb(
            body, factor, default_ns, line_start, line_measurement, line_ts,
            entry_line, entry_key, entry_kind, entry_float, entry_int, entry_end, text,
            measurements.slots, measurements.hashes, measurements.offsets, measurements.data,
            keys.slots, keys.hashes, keys.offsets, keys.data, counts, state,
        )  # fmt: skip
        if status == _ROOM_MEASUREMENTS:
            measurements = grown_names_nb(_counted(measurements, counts[0]), state[_NEED])
        elif status == _ROOM_KEYS:
            keys = grown_names_nb(_counted(keys, counts[1]), state[_NEED])
        else:
            break
    n_lines, n_entries = state[_LINES], state[_ENTRIES]
    return Scan(
        (state[_CODE], state[_START], state[_WHERE], state[_TOKEN], state[_TOKEN_END]),
        line_start[:n_lines],
        line_measurement[:n_lines],
        line_ts[:n_lines],
        entry_line[:n_entries],
        entry_key[:n_entries],
        entry_kind[:n_entries],
        entry_float[:n_entries],
        entry_int[:n_entries],
        entry_end[:n_entries],
        _counted(measurements, counts[0]),
        _counted(keys, counts[1]),
        text[: state[_TEXT]],
    )


@njit(cache=True, nogil=True)
def _scan_nb(
    body: np.ndarray,
    factor: int,
    default_ns: int,
    line_start: np.ndarray,
    line_measurement: np.ndarray,
    line_ts: np.ndarray,
    entry_line: np.ndarray,
    entry_key: np.ndarray,
    entry_kind: np.ndarray,
    entry_float: np.ndarray,
    entry_int: np.ndarray,
    entry_end: np.ndarray,
    text: np.ndarray,
    m_slots: np.ndarray,
    m_hashes: np.ndarray,
    m_offsets: np.ndarray,
    m_data: np.ndarray,
    k_slots: np.ndarray,
    k_hashes: np.ndarray,
    k_offsets: np.ndarray,
    k_data: np.ndarray,
    counts: np.ndarray,
    state: np.ndarray,
) -> int:
    """The scan from ``state[_POS]``: 0 when it ended (``state[_CODE]`` says how), or
    _ROOM_MEASUREMENTS / _ROOM_KEYS when that table needs ``state[_NEED]`` more bytes and a
    slot (``state`` then holds the start of the line to resume at)."""
    n = body.size
    b = address_of(body)
    t = address_of(text)
    m_table = table_nb(m_slots, m_hashes, m_offsets, m_data)
    k_table = table_nb(k_slots, k_hashes, k_offsets, k_data)
    m_count = address_of(counts)
    k_count = m_count + 8
    pos = state[_POS]
    lines = state[_LINES]
    entries = state[_ENTRIES]
    o = state[_TEXT]
    code = ErrorCode.Ok
    room = 0
    where = (0, 0, 0)  # the error's position, token start and end
    start = pos
    first_entry = entries
    first_text = o
    while pos < n:
        c = load1(b + pos)
        if c == LF or c == SP or c == TAB or c == CR:
            pos += 1
            continue
        if c == HASH:
            while pos < n and load1(b + pos) != LF:
                pos += 1
            continue
        start = pos
        first_entry = entries
        first_text = o
        # the measurement
        pos, end = read_name_nb(b, pos, n, t, o, False)
        if end == o:
            code, where = ErrorCode.NoMeasurement, (pos, pos, pos)
            break
        measurement = intern_nb(m_table, m_count, t, o, end)
        if measurement < 0:
            room = _ROOM_MEASUREMENTS if load_i64(m_count) < MAX_NAMES else 0
            code, where = ErrorCode.Names, (pos, start, pos)
            state[_NEED] = end - o
            break
        # tags
        while pos < n and load1(b + pos) == COMMA:
            pos += 1
            key_at = pos
            pos, end = read_name_nb(b, pos, n, t, o, True)
            if end == o:
                code, where = ErrorCode.EmptyKey, (pos, key_at, pos)
                break
            if pos >= n or load1(b + pos) != EQ:
                code, where = ErrorCode.TagWithoutValue, (pos, key_at, pos)
                break
            key = intern_nb(k_table, k_count, t, o, end)
            if key < 0:
                room = _ROOM_KEYS if load_i64(k_count) < MAX_NAMES else 0
                code, where = ErrorCode.Names, (pos, key_at, pos)
                state[_NEED] = end - o
                break
            pos += 1  # an empty value is the empty string, as the QuestDB client writes it
            pos, end = read_name_nb(b, pos, n, t, o, False)
            entry_line[entries] = lines
            entry_key[entries] = key
            entry_kind[entries] = EntryKind.Tag
            entry_int[entries] = o
            entry_end[entries] = end
            entries += 1
            o = end
        if code != ErrorCode.Ok:
            break
        # the space before the fields; a line with tags may have none (QuestDB's clients
        # write such rows): then the next token, if any, is the timestamp
        tagged = entries > first_entry
        if not (tagged and at_eol_nb(b, pos, n)):
            if pos >= n or load1(b + pos) != SP:
                code, where = ErrorCode.NoFields, (pos, pos, pos)
                break
            while pos < n and load1(b + pos) == SP:
                pos += 1
            if at_eol_nb(b, pos, n) and not tagged:
                code, where = ErrorCode.NoFields, (pos, pos, pos)
                break
        if not tagged or _has_equals_nb(b, pos, n):
            while True:
                key_at = pos
                pos, end = read_name_nb(b, pos, n, t, o, True)
                if end == o:
                    code, where = ErrorCode.EmptyKey, (pos, key_at, pos)
                    break
                if pos >= n or load1(b + pos) != EQ:
                    code, where = ErrorCode.FieldWithoutValue, (pos, key_at, pos)
                    break
                key = intern_nb(k_table, k_count, t, o, end)
                if key < 0:
                    room = _ROOM_KEYS if load_i64(k_count) < MAX_NAMES else 0
                    code, where = ErrorCode.Names, (pos, key_at, pos)
                    state[_NEED] = end - o
                    break
                pos += 1
                entry_line[entries] = lines
                entry_key[entries] = key
                if pos < n and load1(b + pos) == QUOTE:
                    after, end = read_string_nb(b, pos + 1, n, t, o)
                    if after < 0:
                        code, where = ErrorCode.Unterminated, (pos, key_at, pos)
                        break
                    entry_kind[entries] = EntryKind.String
                    entry_int[entries] = o
                    entry_end[entries] = end
                    o = end
                    pos = after
                    if not (
                        at_eol_nb(b, pos, n) or load1(b + pos) == SP or load1(b + pos) == COMMA
                    ):
                        code, where = ErrorCode.AfterString, (pos, key_at, pos)
                        break
                else:
                    value_at = pos
                    while pos < n:
                        c = load1(b + pos)
                        if c == SP or c == COMMA or c == LF or (c == CR and at_eol_nb(b, pos, n)):
                            break
                        pos += 1
                    status, kind, number, integer = field_value_nb(b, value_at, pos)
                    if status != ErrorCode.Ok:
                        code, where = status, (value_at, key_at, pos)
                        break
                    entry_kind[entries] = kind
                    entry_float[entries] = number
                    entry_int[entries] = value_at if kind == EntryKind.SlowFloat else integer
                    entry_end[entries] = pos
                entries += 1
                if pos < n and load1(b + pos) == COMMA:
                    pos += 1
                    continue
                break
            if code != ErrorCode.Ok:
                break
        # the timestamp
        while pos < n and load1(b + pos) == SP:
            pos += 1
        ts = default_ns
        if not at_eol_nb(b, pos, n):
            ts_at = pos
            while not at_eol_nb(b, pos, n) and load1(b + pos) != SP:
                pos += 1
            status, ts = timestamp_nb(b, ts_at, pos, factor)
            if status != ErrorCode.Ok:
                code, where = status, (ts_at, ts_at, pos)
                break
            while pos < n and load1(b + pos) == SP:
                pos += 1
            if not at_eol_nb(b, pos, n):
                trailing = pos
                while not at_eol_nb(b, pos, n):
                    pos += 1
                code, where = ErrorCode.Trailing, (trailing, trailing, pos)
                break
        line_start[lines] = start
        line_measurement[lines] = measurement
        line_ts[lines] = ts
        lines += 1
        if pos < n and load1(b + pos) == CR:
            pos += 1
        if pos < n and load1(b + pos) == LF:
            pos += 1
    if room != 0:  # resume at this line's start once the table has grown
        state[_POS] = start
        state[_LINES] = lines
        state[_ENTRIES] = first_entry
        state[_TEXT] = first_text
        return room
    state[_POS] = pos
    state[_LINES] = lines
    state[_ENTRIES] = entries
    state[_TEXT] = o
    state[_CODE] = code
    state[_START] = start
    state[_WHERE], state[_TOKEN], state[_TOKEN_END] = where
    return 0


# -- columns ----------------------------------------------------------------------------------


class Grouping(NamedTuple):
    """Entries as columns: one per (measurement, key), each line a row of its measurement."""

    error: tuple[int, int, int]  # code, the entry at fault, the entry it disagrees with
    line_row: np.ndarray  # int64: each line's row in its measurement
    measurement_rows: np.ndarray  # int64 per measurement
    line_order: np.ndarray  # int64: lines grouped by measurement, in order
    measurement_offsets: np.ndarray  # int64: measurement m's lines are line_order[o[m]:o[m+1]]
    column_measurement: np.ndarray  # int64 per column
    column_key: np.ndarray  # int64
    column_kind: np.ndarray  # int64 (EntryKind, never SlowFloat)
    column_first: np.ndarray  # int64: the entry that made it
    entry_order: np.ndarray  # int64: entries grouped by column, in line order
    column_offsets: np.ndarray  # int64


@njit(cache=True, nogil=True)
def group_columns_nb(
    line_measurement: np.ndarray,
    n_measurements: int,
    entry_line: np.ndarray,
    entry_key: np.ndarray,
    entry_kind: np.ndarray,
    n_keys: int,
) -> Grouping:
    """Give each (measurement, key) a column and check that its entries agree: one kind
    throughout (a tag stays a tag, an integer field an integer), and one entry a line."""
    n_lines = line_measurement.size
    n_entries = entry_line.size
    line_row = np.empty(n_lines, dtype=np.int64)
    measurement_rows = np.zeros(n_measurements, dtype=np.int64)
    for line in range(n_lines):
        m = line_measurement[line]
        line_row[line] = measurement_rows[m]
        measurement_rows[m] += 1
    measurement_offsets = np.zeros(n_measurements + 1, dtype=np.int64)
    for m in range(n_measurements):
        measurement_offsets[m + 1] = measurement_offsets[m] + measurement_rows[m]
    line_order = np.empty(n_lines, dtype=np.int64)
    for line in range(n_lines):
        m = line_measurement[line]
        line_order[measurement_offsets[m] + line_row[line]] = line

    # (measurement, key) -> column; _assign_nb stops when its tables are full, to grow here.
    slots = np.full(64, -1, dtype=np.int64)
    columns = np.empty((4, 16), dtype=np.int64)  # pair, kind, first entry, last line
    entry_column = np.empty(n_entries, dtype=np.int64)
    state = np.zeros(5, dtype=np.int64)  # next entry, columns, error code, at fault, first
    while _assign_nb(
        line_measurement, entry_line, entry_key, entry_kind, n_keys, slots, columns,
        entry_column, state,
    ):  # fmt: skip
        count = state[1]
        grown = np.empty((4, 2 * columns.shape[1]), dtype=np.int64)
        grown[:, :count] = columns[:, :count]
        columns = grown
        slots = np.full(2 * slots.size, -1, dtype=np.int64)
        for c in range(count):
            j = _pair_slot_nb(columns[0, c], slots.size)
            while slots[j] >= 0:
                j = (j + 1) & (slots.size - 1)
            slots[j] = c
    count = state[1]
    error = (state[2], state[3], state[4])
    pair = columns[0]
    column_offsets = np.zeros(count + 1, dtype=np.int64)
    entry_order = np.empty(n_entries if error[0] == ErrorCode.Ok else 0, dtype=np.int64)
    if error[0] == ErrorCode.Ok:
        for e in range(n_entries):
            column_offsets[entry_column[e] + 1] += 1
        for c in range(count):
            column_offsets[c + 1] += column_offsets[c]
        cursor = column_offsets[:count].copy()
        for e in range(n_entries):
            c = entry_column[e]
            entry_order[cursor[c]] = e
            cursor[c] += 1
    column_measurement = np.empty(count, dtype=np.int64)
    column_key = np.empty(count, dtype=np.int64)
    for c in range(count):
        column_measurement[c] = pair[c] // n_keys
        column_key[c] = pair[c] % n_keys
    return Grouping(
        error,
        line_row,
        measurement_rows,
        line_order,
        measurement_offsets,
        column_measurement,
        column_key,
        columns[1, :count].copy(),
        columns[2, :count].copy(),
        entry_order,
        column_offsets,
    )


@njit(cache=True, nogil=True)
def _pair_slot_nb(pair: int, n_slots: int) -> int:
    h = np.uint64(pair) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64((h ^ (h >> np.uint64(31))) & np.uint64(n_slots - 1))  # type: ignore[return-value]


@njit(cache=True, nogil=True)
def _assign_nb(
    line_measurement: np.ndarray,
    entry_line: np.ndarray,
    entry_key: np.ndarray,
    entry_kind: np.ndarray,
    n_keys: int,
    slots: np.ndarray,
    columns: np.ndarray,
    entry_column: np.ndarray,
    state: np.ndarray,
) -> bool:
    """Give entries from ``state[0]`` on their column; True when the tables are full (grow
    them and call again), False when done (``state[2:]``: an error, its entries)."""
    n_slots = slots.size
    capacity = columns.shape[1]
    count = state[1]
    previous_pair = -1
    previous_column = -1
    for e in range(state[0], entry_line.size):
        line = entry_line[e]
        p = np.int64(line_measurement[line]) * n_keys + entry_key[e]
        kind = entry_kind[e]
        if kind == EntryKind.SlowFloat:
            kind = EntryKind.Float
        if p == previous_pair:
            column = previous_column
        else:
            j = _pair_slot_nb(p, n_slots)
            while slots[j] >= 0 and columns[0, slots[j]] != p:
                j = (j + 1) & (n_slots - 1)
            column = slots[j]
            if column < 0:
                if count == capacity or 2 * (count + 1) > n_slots:
                    state[0] = e
                    state[1] = count
                    return True
                column = count
                count += 1
                columns[0, column] = p
                columns[1, column] = kind
                columns[2, column] = e
                columns[3, column] = -1
                slots[j] = column
            previous_pair = p
            previous_column = column
        if columns[3, column] == line:
            state[2], state[3], state[4] = ErrorCode.Duplicate, e, columns[2, column]
            break
        if kind != columns[1, column]:
            state[2], state[3], state[4] = ErrorCode.Conflict, e, columns[2, column]
            break
        columns[3, column] = line
        entry_column[e] = column
    state[0] = entry_line.size
    state[1] = count
    return False


@njit(cache=True, nogil=True)
def _grown_nb(array: np.ndarray) -> np.ndarray:
    grown = np.empty(2 * array.size, dtype=array.dtype)
    grown[: array.size] = array
    return grown


@njit(cache=True, nogil=True)
def gather_text_nb(
    text: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """A text column of ``n_rows``: value ``k`` (``text[starts[k]:ends[k]]``) at row
    ``rows[k]`` (ascending), the other rows empty (NULL by the caller's mask). Returns the
    n_rows + 1 offsets and the bytes, as Arrow's large_string lays them out."""
    size = 0
    for k in range(starts.size):
        size += ends[k] - starts[k]
    data = np.empty(size, dtype=np.uint8)
    offsets = np.empty(n_rows + 1, dtype=np.int64)
    offsets[0] = 0
    row = 0
    p = 0
    for k in range(starts.size):
        target = rows[k]
        while row < target:
            offsets[row + 1] = p
            row += 1
        length = ends[k] - starts[k]
        data[p : p + length] = text[starts[k] : ends[k]]
        p += length
        offsets[row + 1] = p
        row += 1
    while row < n_rows:
        offsets[row + 1] = p
        row += 1
    return offsets, data
