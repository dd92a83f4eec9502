"""Number-to-text kernels for ILP: shortest round-trip float64 (Ryu) and decimal integers.

The QuestDB client formats floats with the Rust ``ryu`` crate, so byte-identical output needs
the same digits: the shortest decimal that parses back to the same double, the closest one to
the exact binary value when several are that short, ties to even. ``f64_to_decimal_nb`` is Ulf
Adams' Ryu (PLDI 2018) over the same 125-bit power-of-five tables, which are computed here
exactly from Python integers rather than pasted in. Its correctness argument carries over
because the constants and the algorithm are the same; the tests and ``bench/engine_ilp.py``
compare it with ``repr(float)`` and the client's bytes on millions of random bit patterns.
Prices and sizes take cheaper paths first, proven to give the same digits whenever they
answer: ``_short_decimal_nb``, and before it ``_hinted_decimal_nb``, which tries the number of
decimals of the column's previous value.

``write_f64_nb`` then lays the digits out exactly as ``ryu::Buffer::format_finite`` does, with
the client's non-finite spellings (``NaN``, ``Infinity``, ``-Infinity``). It takes the float
with its IEEE-754 bit pattern (two loads of the same 8 bytes), so nothing needs a bit cast
inside numba. The writers take and return raw addresses (see
``engine._rawmem`` for why) and write with 8-byte stores, so up to 7 bytes after the text they
return may be clobbered: callers overwrite them or leave room.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine._rawmem import JIT_DISABLED, load1, store1, store8

_POW5_BITCOUNT = 125
_POW5_INV_BITCOUNT = 125
_MASK64 = (1 << 64) - 1


def _pow5_tables() -> tuple[np.ndarray, np.ndarray]:
    """Ryu's ``DOUBLE_POW5_SPLIT`` (5^i scaled to 125 bits, i < 326) and
    ``DOUBLE_POW5_INV_SPLIT`` (2^(bits(5^q)-1+125) / 5^q rounded up, q < 342), as
    ``(lo, hi)`` 64-bit halves."""
    split = np.empty((326, 2), dtype=np.uint64)
    for i in range(326):
        pow5 = 5**i
        shift = pow5.bit_length() - _POW5_BITCOUNT
        value = pow5 >> shift if shift >= 0 else pow5 << -shift
        split[i, 0] = value & _MASK64
        split[i, 1] = value >> 64
    inv = np.empty((342, 2), dtype=np.uint64)
    for q in range(342):
        pow5 = 5**q
        value = (1 << (pow5.bit_length() - 1 + _POW5_INV_BITCOUNT)) // pow5 + 1
        inv[q, 0] = value & _MASK64
        inv[q, 1] = value >> 64
    return split, inv


POW5_SPLIT, POW5_INV_SPLIT = _pow5_tables()
# Exact doubles 10**0 .. 10**22 (5**22 < 2**53).
POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)

_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)
_U4 = np.uint64(4)
_U5 = np.uint64(5)
_U10 = np.uint64(10)
_U100 = np.uint64(100)
_U10_4 = np.uint64(10_000)
_U10_8 = np.uint64(100_000_000)
_U10_15 = np.uint64(10**15)
_U10_16 = np.uint64(10**16)
_HIDDEN_BIT = np.uint64(1 << 52)
_MANTISSA_MASK = np.uint64((1 << 52) - 1)
_EXPONENT_MASK = np.uint64(0x7FF)
_U52 = np.uint64(52)
_U63 = np.uint64(63)
_U8 = np.uint64(8)
_U16 = np.uint64(16)
_U32 = np.uint64(32)
_DOT = np.uint64(46)
_LANES_7F = np.uint64(0x0000007F0000007F)
_LANES_0F = np.uint64(0x000F000F000F000F)
_ASCII_ZEROS = np.uint64(0x3030303030303030)
# write_f64_nb's hint when a column has no guess of its number of decimals.
NO_HINT = 99
# Its hint after a value that needed Ryu's full algorithm (17 significant digits, random
# doubles): the next value goes straight to Ryu, skipping the two checks that would fail.
FULL_HINT = 98
# Biased exponents of [2**-23, 2**53), where _short_decimal_nb applies.
_SHORT_MIN_EXPONENT = 1023 - 23
_SHORT_END_EXPONENT = 1023 + 53

if JIT_DISABLED:

    def mul_shift_64(m: Any, mul_lo: Any, mul_hi: Any, j: Any) -> Any:
        """Pure-Python stand-in so ``NUMBA_DISABLE_JIT=1`` still runs the kernels."""
        m = int(m)
        total = ((m * int(mul_lo)) >> 64) + m * int(mul_hi)
        return np.uint64((total >> (int(j) - 64)) & _MASK64)

else:

    @intrinsic
    def mul_shift_64(typingctx: Any, m: Any, mul_lo: Any, mul_hi: Any, j: Any) -> Any:
        """``(m * (mul_hi * 2**64 + mul_lo)) >> j`` truncated to 64 bits, for 64 < j < 128.

        numba has no 128-bit integer type, so the two 64x64->128 products are emitted as LLVM
        i128 arithmetic: one ``mul`` instruction each on x86-64 instead of four 32-bit
        products and the carries an emulation would need.
        """
        sig = types.uint64(types.uint64, types.uint64, types.uint64, types.int64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            i128 = ir.IntType(128)
            m128 = builder.zext(args[0], i128)
            low = builder.mul(m128, builder.zext(args[1], i128))
            high = builder.mul(m128, builder.zext(args[2], i128))
            total = builder.add(builder.lshr(low, ir.Constant(i128, 64)), high)
            shift = builder.zext(builder.sub(args[3], ir.Constant(ir.IntType(64), 64)), i128)
            return builder.trunc(builder.lshr(total, shift), ir.IntType(64))

        return sig, codegen


@njit(cache=True, nogil=True)
def _pow5_factor_nb(value: np.uint64) -> int:
    count = 0
    while value > _U0:
        quotient = value // _U5
        if value - quotient * _U5 != _U0:
            return count
        value = quotient
        count += 1
    return count


@njit(cache=True, nogil=True)
def _length8_nb(v: np.uint64) -> int:
    """Number of decimal digits of ``v < 10**8`` (at least 1)."""
    if v < _U10_4:
        if v < _U100:
            return 2 if v >= _U10 else 1
        return 4 if v >= np.uint64(1000) else 3
    if v < np.uint64(1_000_000):
        return 6 if v >= np.uint64(100_000) else 5
    return 8 if v >= np.uint64(10_000_000) else 7


@njit(cache=True, nogil=True)
def decimal_length_nb(v: np.uint64) -> int:
    """Number of decimal digits of ``v`` (at least 1)."""
    if v < _U10_8:
        return _length8_nb(v)
    if v < _U10_16:
        return 8 + _length8_nb(v // _U10_8)
    return 16 + _length8_nb(v // _U10_16)


@njit(cache=True, nogil=True)
def ascii8_nb(v: np.uint64) -> np.uint64:
    """The 8 digits of ``v < 10**8`` (leading zeros kept) as ASCII bytes of a little-endian
    word, most significant digit in the lowest byte.

    SWAR: split into two 4-digit halves in 32-bit lanes, each into 2-digit halves in 16-bit
    lanes, each into digits in bytes; the multiply-shifts are exact quotients by 100
    (x * 10486 >> 20, x < 10**4) and by 10 (x * 103 >> 10, x < 100), and no lane overflows.
    """
    high = v // _U10_4
    x = high | ((v - high * _U10_4) << _U32)
    hundreds = ((x * np.uint64(10486)) >> np.uint64(20)) & _LANES_7F
    x = hundreds | ((x - hundreds * _U100) << _U16)
    tens = ((x * np.uint64(103)) >> np.uint64(10)) & _LANES_0F
    x = tens | ((x - tens * _U10) << _U8)
    return x + _ASCII_ZEROS


@njit(cache=True, nogil=True)
def _short_decimal_nb(value: float, ieee_exponent: int) -> tuple[bool, np.uint64, int]:
    """Fast path for doubles that are the nearest double to a decimal of at most 15
    significant digits (prices, sizes): ``(True, digits, exponent)`` equal to Ryu's result,
    or ``(False, ...)`` to fall back to Ryu.

    Why it equals Ryu: with M < 2**53 and 10**|p| <= 10**22 both exact doubles, IEEE division
    (multiplication for p < 0) is correctly rounded, so ``M / 10**p == value`` proves that
    D = M * 10**-p rounds to ``value``, i.e. lies in its rounding interval. That interval is
    at most 2**-52 * value wide, while two distinct decimals of at most 15 significant digits
    are at least 10**-15 * value apart, so D is the only such decimal in it; Ryu's shortest
    output lies in the interval with no more digits than D, so it is D. The guess of M only
    decides whether the check passes, never the result. Restricted to [2**-23, 2**53) so that
    |p| stays within the exact powers of ten and far from subnormals.
    """
    e10 = ((ieee_exponent - 1023) * 78913) >> 18  # floor(log10(2**e)), log10(value) - 1 <= e10
    p = 14 - e10
    scaled = value * POW10[p] if p >= 0 else value / POW10[-p]
    if scaled >= 1e15:
        p -= 1
        scaled = value * POW10[p] if p >= 0 else value / POW10[-p]
    digits = np.uint64(scaled + 0.5)
    if digits > _U10_15:
        return False, digits, 0
    whole = np.float64(digits)
    back = whole / POW10[p] if p >= 0 else whole * POW10[-p]
    if back != value:
        return False, digits, 0
    # Strip trailing zeros, at most 15: divisibility by 10**r is monotone in r.
    exponent = -p
    if digits % _U10_8 == _U0:
        digits //= _U10_8
        exponent += 8
    if digits % _U10_4 == _U0:
        digits //= _U10_4
        exponent += 4
    if digits % _U100 == _U0:
        digits //= _U100
        exponent += 2
    if digits % _U10 == _U0:
        digits //= _U10
        exponent += 1
    return True, digits, exponent


@njit(cache=True, nogil=True)
def _hinted_decimal_nb(value: float, p: int) -> tuple[bool, np.uint64, int]:
    """``_short_decimal_nb`` with the number of decimals ``p`` (|p| <= 22) guessed from the
    previous value of the column: one scaling, one check and usually no trailing zero to
    strip, where the general fast path strips up to 14. The same proof holds: a passing check
    means ``digits * 10**-p`` is a decimal of at most 15 digits rounding to ``value``, so its
    digits without trailing zeros are Ryu's."""
    scaled = value * POW10[p] if p >= 0 else value / POW10[-p]
    if not scaled < 1e15:
        return False, _U0, 0
    digits = np.uint64(scaled + 0.5)
    whole = np.float64(digits)
    back = whole / POW10[p] if p >= 0 else whole * POW10[-p]
    if back != value:  # value > 0, so this also rules out digits == 0
        return False, _U0, 0
    exponent = -p
    while digits % _U10 == _U0:
        digits //= _U10
        exponent += 1
    return True, digits, exponent


@njit(cache=True, nogil=True)
def f64_to_decimal_nb(ieee_mantissa: np.uint64, ieee_exponent: int) -> tuple[np.uint64, int]:
    """Shortest ``(digits, exponent)`` with ``digits * 10**exponent`` reading back as the finite,
    non-zero double with these IEEE fields; equal to the digits of ``repr(float)``.

    Ryu's ``d2d``. The common-case digit removal drops 8, 4, 2, then 1 digits at a time instead
    of one per step: "vp // 10**r > vm // 10**r" is monotone in r, so the greedy binary steps
    stop at the same r as Ryu's loop, and without exact trailing zeros the rounding only needs
    the highest removed digit, which is ``remainder >= 5 * 10**(r-1)``.
    """
    if ieee_exponent == 0:
        e2 = 1 - 1023 - 52 - 2
        m2 = ieee_mantissa
    else:
        e2 = ieee_exponent - 1023 - 52 - 2
        m2 = _HIDDEN_BIT | ieee_mantissa
        # Integers below 2**53: the interval around them is at most +-0.5 wide, so the shortest
        # form is the integer itself without its trailing zeros.
        if -52 <= e2 + 2 <= 0:
            shift = np.uint64(-(e2 + 2))
            if m2 & ((_U1 << shift) - _U1) == _U0:
                value = m2 >> shift
                exponent = 0
                while True:
                    quotient = value // _U10
                    if value - quotient * _U10 != _U0:
                        break
                    value = quotient
                    exponent += 1
                return value, exponent

    accept_bounds = (m2 & _U1) == _U0
    mv = _U4 * m2
    mm_shift = _U1 if (ieee_mantissa != _U0 or ieee_exponent <= 1) else _U0
    vm_trailing_zeros = False
    vr_trailing_zeros = False
    if e2 >= 0:
        q = ((e2 * 78913) >> 18) - (1 if e2 > 3 else 0)
        e10 = q
        k = _POW5_INV_BITCOUNT + ((q * 1217359) >> 19)
        j = -e2 + q + k
        mul_lo = POW5_INV_SPLIT[q, 0]
        mul_hi = POW5_INV_SPLIT[q, 1]
        vr = mul_shift_64(mv, mul_lo, mul_hi, j)
        vp = mul_shift_64(mv + _U2, mul_lo, mul_hi, j)
        vm = mul_shift_64(mv - _U1 - mm_shift, mul_lo, mul_hi, j)
        if q <= 21:
            # At most one of mp, mv and mm is a multiple of 5.
            if mv % _U5 == _U0:
                vr_trailing_zeros = _pow5_factor_nb(mv) >= q
            elif accept_bounds:
                vm_trailing_zeros = _pow5_factor_nb(mv - _U1 - mm_shift) >= q
            elif _pow5_factor_nb(mv + _U2) >= q:
                vp -= _U1
    else:
        q = (((-e2) * 732923) >> 20) - (1 if -e2 > 1 else 0)
        e10 = q + e2
        i = -e2 - q
        k = ((i * 1217359) >> 19) + 1 - _POW5_BITCOUNT
        j = q - k
        mul_lo = POW5_SPLIT[i, 0]
        mul_hi = POW5_SPLIT[i, 1]
        vr = mul_shift_64(mv, mul_lo, mul_hi, j)
        vp = mul_shift_64(mv + _U2, mul_lo, mul_hi, j)
        vm = mul_shift_64(mv - _U1 - mm_shift, mul_lo, mul_hi, j)
        if q <= 1:
            # mv = 4 * m2 always has at least q trailing zero bits here.
            vr_trailing_zeros = True
            if accept_bounds:
                vm_trailing_zeros = mm_shift == _U1
            else:
                vp -= _U1
        elif q < 63:
            vr_trailing_zeros = (mv & ((_U1 << np.uint64(q)) - _U1)) == _U0

    removed = 0
    if vm_trailing_zeros or vr_trailing_zeros:
        # Rare general case (exact decimal ties): Ryu's digit-at-a-time loop, verbatim logic.
        last_removed = _U0
        while vp // _U10 > vm // _U10:
            vm_trailing_zeros = vm_trailing_zeros and vm % _U10 == _U0
            vr_trailing_zeros = vr_trailing_zeros and last_removed == _U0
            last_removed = vr % _U10
            vr //= _U10
            vp //= _U10
            vm //= _U10
            removed += 1
        if vm_trailing_zeros:
            while vm % _U10 == _U0:
                vr_trailing_zeros = vr_trailing_zeros and last_removed == _U0
                last_removed = vr % _U10
                vr //= _U10
                vp //= _U10
                vm //= _U10
                removed += 1
        if vr_trailing_zeros and last_removed == _U5 and vr % _U2 == _U0:
            last_removed = _U4  # round half to even
        take_next = (vr == vm and (not accept_bounds or not vm_trailing_zeros)) or (
            last_removed >= _U5
        )
        output = vr + (_U1 if take_next else _U0)
        return output, e10 + removed

    round_up = False
    if vp // _U10_8 > vm // _U10_8:
        quotient = vr // _U10_8
        round_up = vr - quotient * _U10_8 >= np.uint64(50_000_000)
        vr = quotient
        vp //= _U10_8
        vm //= _U10_8
        removed += 8
    if vp // _U10_4 > vm // _U10_4:
        quotient = vr // _U10_4
        round_up = vr - quotient * _U10_4 >= np.uint64(5_000)
        vr = quotient
        vp //= _U10_4
        vm //= _U10_4
        removed += 4
    if vp // _U100 > vm // _U100:
        quotient = vr // _U100
        round_up = vr - quotient * _U100 >= np.uint64(50)
        vr = quotient
        vp //= _U100
        vm //= _U100
        removed += 2
    if vp // _U10 > vm // _U10:
        quotient = vr // _U10
        round_up = vr - quotient * _U10 >= _U5
        vr = quotient
        vp //= _U10
        vm //= _U10
        removed += 1
    # The ladder above removes up to 15 digits; vp can have 17, so finish one at a time.
    while vp // _U10 > vm // _U10:
        quotient = vr // _U10
        round_up = vr - quotient * _U10 >= _U5
        vr = quotient
        vp //= _U10
        vm //= _U10
        removed += 1
    output = vr + (_U1 if (vr == vm or round_up) else _U0)
    return output, e10 + removed


def _ascii_word(text: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(text.ljust(8, b"\0"), "little"))


_NAN = _ascii_word(b"NaN")
_INFINITY = _ascii_word(b"Infinity")
_ZERO = _ascii_word(b"0.0")
_ZEROS = _ascii_word(b"00000000")
_ZERO_POINT_ZEROS = _ascii_word(b"0.000000")


@njit(cache=True, nogil=True)
def _write_head_nb(end: int, v: np.uint64) -> None:
    length = _length8_nb(v)
    store8(end - length, ascii8_nb(v) >> np.uint64(8 * (8 - length)))


@njit(cache=True, nogil=True)
def write_digits_nb(end: int, v: np.uint64) -> None:
    """Write the decimal digits of ``v`` so that the last one lands at address ``end - 1``.

    Writes in 8-byte stores, most significant block first, so the up to 7 bytes a short
    leading block spills past its end are overwritten by the next block; past ``end`` itself
    up to 7 bytes may be clobbered.
    """
    if v < _U10_8:
        _write_head_nb(end, v)
        return
    high = v // _U10_8
    if high < _U10_8:
        _write_head_nb(end - 8, high)
    else:
        top = high // _U10_8
        _write_head_nb(end - 16, top)
        store8(end - 16, ascii8_nb(high - top * _U10_8))
    store8(end - 8, ascii8_nb(v - high * _U10_8))


@njit(cache=True, nogil=True)
def write_u64_nb(at: int, v: np.uint64) -> int:
    """Decimal ``v`` at address ``at``; return the address after it."""
    end = at + decimal_length_nb(v)
    write_digits_nb(end, v)
    return end


@njit(cache=True, nogil=True)
def write_i64_nb(at: int, v: int) -> int:
    """Decimal ``int64`` as Rust's ``itoa`` writes it (``-9223372036854775808`` included)."""
    if v < 0:
        store1(at, 45)  # '-'
        # -(v + 1) fits in int64 for every v, INT64_MIN included.
        return write_u64_nb(at + 1, np.uint64(-(v + 1)) + _U1)
    return write_u64_nb(at, np.uint64(v))


@njit(cache=True, nogil=True)
def write_f64_nb(at: int, value: float, bits: np.uint64, hint: int) -> tuple[int, int]:
    """Write ``value`` (whose IEEE bits are ``bits``) at address ``at`` as the QuestDB client
    does (``ryu::Buffer::format_finite`` rules, ``NaN`` / ``Infinity`` / ``-Infinity``
    otherwise); return the address after it and the hint for the column's next value. The
    text is at most 24 bytes. ``hint`` is the number of decimals to try first (NO_HINT for
    none, FULL_HINT to go straight to Ryu): pass each column's returned hint back in with its
    next value. Hints only choose which exact path answers; the text never depends on them."""
    ieee_mantissa = bits & _MANTISSA_MASK
    ieee_exponent = int((bits >> _U52) & _EXPONENT_MASK)
    if ieee_exponent == 0x7FF and ieee_mantissa != _U0:
        store8(at, _NAN)
        return at + 3, hint
    if (bits >> _U63) != _U0:
        store1(at, 45)  # '-'
        at += 1
    if ieee_exponent == 0x7FF:
        store8(at, _INFINITY)
        return at + 8, hint
    if ieee_exponent == 0 and ieee_mantissa == _U0:
        store8(at, _ZERO)
        return at + 3, hint

    short = False
    digits = _U0
    exponent = 0
    if hint != FULL_HINT and _SHORT_MIN_EXPONENT <= ieee_exponent < _SHORT_END_EXPONENT:
        if hint != NO_HINT:
            short, digits, exponent = _hinted_decimal_nb(abs(value), hint)
        if not short:
            short, digits, exponent = _short_decimal_nb(abs(value), ieee_exponent)
            hint = -exponent if short and -22 <= exponent <= 22 else NO_HINT
    if not short:
        digits, exponent = f64_to_decimal_nb(ieee_mantissa, ieee_exponent)
        # Ryu's digits say whether the column looks short (try the hint next) or full.
        if digits >= _U10_15:
            hint = FULL_HINT
        else:
            hint = -exponent if -22 <= exponent <= 22 else NO_HINT
    length = decimal_length_nb(digits)
    point = length + exponent  # 10**(point-1) <= |v| < 10**point
    if 0 <= exponent and point <= 16:
        # 1234e7 -> 12340000000.0
        write_digits_nb(at + length, digits)
        for zeros in range(at + length, at + point, 8):
            store8(zeros, _ZEROS)
        store1(at + point, 46)  # '.'
        store1(at + point + 1, 48)
        return at + point + 2, hint
    if 0 < point <= 16:
        # 1234e-2 -> 12.34
        if length <= 7:
            # Digits and the point in one word: the point's byte goes in after `point` digits.
            word = ascii8_nb(digits) >> np.uint64(8 * (8 - length))
            cut = np.uint64(8 * point)
            integer = word & ((_U1 << cut) - _U1)
            store8(at, integer | (_DOT << cut) | ((word >> cut) << (cut + _U8)))
            return at + length + 1, hint
        write_digits_nb(at + length + 1, digits)
        for i in range(at, at + point):
            store1(i, load1(i + 1))
        store1(at + point, 46)
        return at + length + 1, hint
    if -5 < point <= 0:
        # 1234e-6 -> 0.001234: "0." and up to four zeros in one word, then the digits.
        store8(at, _ZERO_POINT_ZEROS)
        end = at + 2 - point + length
        write_digits_nb(end, digits)
        return end, hint
    if length == 1:
        # 1e30
        store1(at, 48 + np.intp(digits))
        store1(at + 1, 101)  # 'e'
        at += 2
    else:
        # 1234e30 -> 1.234e33
        write_digits_nb(at + length + 1, digits)
        store1(at, load1(at + 1))
        store1(at + 1, 46)
        store1(at + length + 1, 101)
        at += length + 2
    return write_i64_nb(at, point - 1), hint
