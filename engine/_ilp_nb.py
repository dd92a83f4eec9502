"""Numba kernels behind ``engine.ilp.encode_ilp``: string factorisation, escaping, and the
parallel row encoder. Each is equivalent to a piece of the QuestDB client's text (protocol
version 1) serialisation, and the tests hold the whole against the client's bytes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine._rawmem import address_of, load1, load_f64, load_i64, load_u64, move16, store1
from engine._ryu import NO_HINT, write_f64_nb, write_i64_nb, write_u64_nb


class ColumnKindT(NamedTuple):
    Float: int = 0
    Int: int = 1
    Bool: int = 2
    String: int = 3
    Symbol: int = 4


ColumnKind = ColumnKindT()

INT64_MIN = np.iinfo(np.int64).min
# Longest text a value of each fixed-width kind can take: "-2.2250738585072014e-308" (24),
# "-9223372036854775808i" (21), "t" (1).
FLOAT_MAX_LEN = 24
INT_MAX_LEN = 21
BOOL_MAX_LEN = 1
# " 9223372036854775807\n": timestamps are checked non-negative before encoding.
TIMESTAMP_MAX_LEN = 21
# Short copies move a fixed COPY_WIDTH bytes (see _copy_nb): sources carry that many bytes of
# padding and every chunk that much slack past its bound.
COPY_WIDTH = 16

_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
_U32 = np.uint64(32)


@njit(cache=True, nogil=True)
def _row_hash_nb(rows: np.ndarray, i: int) -> np.uint64:
    h = np.uint64(rows.shape[1])
    for word in rows[i]:
        h = (h ^ np.uint64(word)) * _HASH_MUL
    return h ^ (h >> _U32)


@njit(cache=True, nogil=True)
def _rows_equal_nb(rows: np.ndarray, a: int, b: int) -> bool:
    for w in range(rows.shape[1]):
        if rows[a, w] != rows[b, w]:
            return False
    return True


@njit(cache=True, nogil=True)
def factorize_rows_nb(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of equal rows of a 2-D uint32 array, numbered by first appearance, and the index
    of each code's first row: ``pd.factorize`` over the rows' bytes.

    String columns reach it as the pointer words of an object array (identity) or the UTF-32
    words of a numpy unicode array (value), so a million-row symbol column is coded in
    milliseconds instead of a million dict look-ups. The open-addressing table starts small and
    doubles, so a column of three symbols stays in L1.
    """
    n = rows.shape[0]
    codes = np.empty(n, dtype=np.int32)
    capacity = 64
    slots = np.full(capacity, -1, dtype=np.int64)
    first = np.empty(16, dtype=np.int64)
    k = 0
    for i in range(n):
        mask = np.uint64(capacity - 1)
        j = np.intp(_row_hash_nb(rows, i) & mask)
        while True:
            s = slots[j]
            if s < 0:
                if k == first.size:
                    grown = np.empty(2 * k, dtype=np.int64)
                    grown[:k] = first
                    first = grown
                first[k] = i
                slots[j] = k
                codes[i] = k
                k += 1
                if 2 * k > capacity:
                    capacity *= 2
                    slots = np.full(capacity, -1, dtype=np.int64)
                    mask = np.uint64(capacity - 1)
                    for c in range(k):
                        jj = np.intp(_row_hash_nb(rows, first[c]) & mask)
                        while slots[jj] >= 0:
                            jj = (jj + 1) & (capacity - 1)
                        slots[jj] = c
                break
            if _rows_equal_nb(rows, first[s], i):
                codes[i] = s
                break
            j = (j + 1) & (capacity - 1)
    return codes, first[:k].copy()


@njit(cache=True, nogil=True)
def utf8_offsets_nb(raw: np.ndarray, char_lens: np.ndarray) -> np.ndarray:
    """Byte offsets of consecutive strings in their joined UTF-8 encoding, given each string's
    length in code points (what ``len(str)`` counts)."""
    offsets = np.empty(char_lens.size + 1, dtype=np.int64)
    offsets[0] = 0
    pos = 0
    for s in range(char_lens.size):
        for _ in range(char_lens[s]):
            lead = raw[pos]
            if lead < 0x80:
                pos += 1
            elif lead < 0xE0:
                pos += 2
            elif lead < 0xF0:
                pos += 3
            else:
                pos += 4
        offsets[s + 1] = pos
    return offsets


@njit(cache=True, nogil=True)
def _must_escape_nb(c: np.uint8, quoted: bool) -> bool:
    if quoted:
        # string fields: " \ \n \r
        return bool(c == 34 or c == 92 or c == 10 or c == 13)
    # names and symbol values: space , = \n \r \
    return bool(c == 32 or c == 44 or c == 61 or c == 10 or c == 13 or c == 92)


@njit(cache=True, nogil=True)
def escape_values_nb(
    raw: np.ndarray, offsets: np.ndarray, quoted: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Escape each UTF-8 value the client's way: a backslash before every escape-worthy byte,
    and for string fields (``quoted``) surrounding double quotes."""
    count = offsets.size - 1
    extra = 2 if quoted else 0
    out_offsets = np.empty(count + 1, dtype=np.int64)
    out_offsets[0] = 0
    for s in range(count):
        length = offsets[s + 1] - offsets[s] + extra
        for b in range(offsets[s], offsets[s + 1]):
            if _must_escape_nb(raw[b], quoted):
                length += 1
        out_offsets[s + 1] = out_offsets[s] + length
    out = np.empty(out_offsets[count], dtype=np.uint8)
    for s in range(count):
        pos = out_offsets[s]
        if quoted:
            out[pos] = 34
            pos += 1
        for b in range(offsets[s], offsets[s + 1]):
            c = raw[b]
            if _must_escape_nb(c, quoted):
                out[pos] = 92
                pos += 1
            out[pos] = c
            pos += 1
        if quoted:
            out[pos] = 34
    return out, out_offsets


@njit(cache=True, nogil=True)
def chunk_bounds_nb(
    n: int, chunk_rows: int, row_fixed: int, str_codes: np.ndarray, str_offsets: np.ndarray
) -> np.ndarray:
    """Start of each row chunk in the scratch buffer: the cumulative sum of per-row upper
    bounds (fixed-width parts plus the escaped length of the row's strings), plus slack."""
    n_chunks = (n + chunk_rows - 1) // chunk_rows
    starts = np.empty(n_chunks + 1, dtype=np.int64)
    starts[0] = 0
    for c in range(n_chunks):
        lo = c * chunk_rows
        hi = min(n, lo + chunk_rows)
        total = (hi - lo) * row_fixed
        for s in range(str_codes.shape[0]):
            for i in range(lo, hi):
                code = str_codes[s, i]
                if code >= 0:
                    total += str_offsets[code + 1] - str_offsets[code]
        starts[c + 1] = starts[c] + total + COPY_WIDTH
    return starts


@njit(cache=True, nogil=True)
def _copy_nb(target: int, source: int, length: int) -> int:
    """Copy ``length`` bytes from address ``source`` to ``target`` in 16-byte blocks; return
    the address after them.

    Names and symbol values are a few bytes: one block moves them. The last block runs past
    the end; those bytes land where the next write goes, or in the chunk's slack.
    """
    for b in range(0, length, COPY_WIDTH):
        move16(target + b, source + b)
    return target + length


@njit(cache=True, nogil=True, parallel=True)
def encode_rows_nb(
    out: np.ndarray,
    starts: np.ndarray,
    chunk_rows: int,
    table: np.ndarray,
    kinds: np.ndarray,
    slots: np.ndarray,
    keys: np.ndarray,
    key_offsets: np.ndarray,
    column_at: np.ndarray,
    str_codes: np.ndarray,
    str_bytes: np.ndarray,
    str_offsets: np.ndarray,
    at: np.ndarray,
) -> np.ndarray:
    """Encode every row as the client's ILP text line, chunk ``c`` of ``chunk_rows`` rows at
    ``out[starts[c]:]``, chunks in parallel; return each chunk's byte length.

    Columns come in output order (symbols, then fields) as ``kinds``. A numeric column is read
    in place at address ``column_at[k]`` (C-contiguous float64, int64 or bool, kept alive by
    the caller); a string column through its row codes ``str_codes[slots[k]]`` into the
    escaped values ``str_bytes[str_offsets[code]:str_offsets[code + 1]]``, -1 being a null
    that leaves the column out of the row, as the client does. ``keys`` hold each column's
    ``,name=`` with the name escaped.

    Writes go through raw addresses, unchecked (``engine._rawmem``): ``table``, ``keys`` and
    ``str_bytes`` end with COPY_WIDTH bytes of padding, and each chunk's bound in ``starts``
    leaves COPY_WIDTH bytes of slack. Call it under ``numba.parallel_chunksize(1)`` so that
    chunks are handed out one at a time.
    """
    n = at.size
    n_chunks = starts.size - 1
    lengths = np.empty(n_chunks, dtype=np.int64)
    n_cols = kinds.size
    base = address_of(out)
    table_at = address_of(table)
    table_len = table.size - COPY_WIDTH
    keys_at = address_of(keys)
    strings_at = address_of(str_bytes)
    for c in prange(n_chunks):
        p = base + starts[c]
        hints = np.full(n_cols, NO_HINT, dtype=np.int64)  # decimals to try, per float column
        for i in range(c * chunk_rows, min(n, (c + 1) * chunk_rows)):
            p = _copy_nb(p, table_at, table_len)
            has_field = False
            for k in range(n_cols):
                kind = kinds[k]
                slot = slots[k]
                code = -1
                if kind == ColumnKind.Symbol or kind == ColumnKind.String:
                    code = str_codes[slot, i]
                    if code < 0:
                        continue
                key = p
                p = _copy_nb(p, keys_at + key_offsets[k], key_offsets[k + 1] - key_offsets[k])
                if kind != ColumnKind.Symbol and not has_field:
                    store1(key, 32)  # ' ' instead of ',' opens the fields
                    has_field = True
                if kind == ColumnKind.Float:
                    value_at = column_at[k] + 8 * i
                    p, hints[k] = write_f64_nb(p, load_f64(value_at), load_u64(value_at), hints[k])
                elif kind == ColumnKind.Int:
                    p = write_i64_nb(p, load_i64(column_at[k] + 8 * i))
                    store1(p, 105)  # 'i'
                    p += 1
                elif kind == ColumnKind.Bool:
                    store1(p, 116 if load1(column_at[k] + i) else 102)  # 't' / 'f'
                    p += 1
                else:
                    start = str_offsets[code]
                    p = _copy_nb(p, strings_at + start, str_offsets[code + 1] - start)
            ts = at[i]
            if ts != INT64_MIN:  # NaT: no timestamp, the server assigns one
                store1(p, 32)
                p = write_u64_nb(p + 1, np.uint64(ts))
            store1(p, 10)  # '\n'
            p += 1
        lengths[c] = p - base - starts[c]
    return lengths


@njit(cache=True, nogil=True, parallel=True)
def gather_chunks_nb(
    target: np.ndarray, scratch: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> None:
    """Copy each chunk's ``lengths[c]`` bytes at ``scratch[starts[c]:]`` back to back into
    ``target``, chunks in parallel (so the page faults of a fresh result are shared too)."""
    offsets = np.empty(lengths.size + 1, dtype=np.int64)
    offsets[0] = 0
    for c in range(lengths.size):
        offsets[c + 1] = offsets[c] + lengths[c]
    for c in prange(lengths.size):
        target[offsets[c] : offsets[c + 1]] = scratch[starts[c] : starts[c] + lengths[c]]
