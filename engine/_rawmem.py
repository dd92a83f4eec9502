"""Unchecked loads and stores at raw addresses, for the text-writing kernels of ``engine.ilp``
and the bar simulator's stretches of bars (``engine.simulate``).

Why not array indexing: every call of a numba function that takes an array increments and
decrements the array's reference count around the call, an atomic instruction that also
drains the store buffer. A row of ILP text makes a dozen such calls into the number writers,
and those atomics cost more than the formatting; the simulator calls its stretch kernel once
per trade in some runs. These kernels therefore take the integer address of the byte to
write (``address_of(array) + offset``) and store through these intrinsics; the caller owns
the array, keeps it alive, and sizes it so every write fits.

Addresses are ``int64`` (user-space addresses are below 2**47) so that arithmetic with
positions stays in signed integers; numba turns int64/uint64 mixes into floats. With
``NUMBA_DISABLE_JIT=1`` the same calls go through ``ctypes``. ``new_bytes`` hands out the
memory of a fresh ``bytes`` object, so that a result is written once, in place, and
``scratch`` plain anonymous memory.
"""

from __future__ import annotations

import ctypes
import mmap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import config
from numba.extending import intrinsic

# numba sets its config attributes dynamically, hence getattr.
JIT_DISABLED = bool(getattr(config, "DISABLE_JIT", 0))

if JIT_DISABLED:

    def address_of(array: np.ndarray) -> int:
        """Address of ``array``'s first byte."""
        return int(array.ctypes.data)

    def load1(address: int) -> int:
        return int(ctypes.c_uint8.from_address(int(address)).value)

    def load_u64(address: int) -> np.uint64:
        return np.uint64(ctypes.c_uint64.from_address(int(address)).value)

    def load_i64(address: int) -> int:
        return int(ctypes.c_int64.from_address(int(address)).value)

    def load_f64(address: int) -> float:
        return float(ctypes.c_double.from_address(int(address)).value)

    def store1(address: int, byte: Any) -> None:
        ctypes.c_uint8.from_address(int(address)).value = int(byte)

    def store8(address: int, word: Any) -> None:
        """The 8 bytes of ``word``, little-endian, at ``address`` (unaligned)."""
        ctypes.memmove(int(address), int(word).to_bytes(8, "little"), 8)

    def store(address: int, value: Any) -> None:
        """``value`` at ``address`` in its own machine type (a float64, an int64, an int8...)."""
        raw = np.asarray(value)
        ctypes.memmove(int(address), raw.tobytes(), raw.itemsize)

    def move16(target: int, source: int) -> None:
        """16 bytes from ``source`` to ``target`` (unaligned, non-overlapping)."""
        ctypes.memmove(int(target), int(source), 16)

else:

    def _pointer(builder: Any, address: Any, pointee: Any) -> Any:
        return builder.inttoptr(address, pointee.as_pointer())

    @intrinsic
    def address_of(typingctx: Any, array: Any) -> Any:
        """Address of ``array``'s first byte."""
        sig = types.intp(array)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            data = context.make_array(signature.args[0])(context, builder, value=args[0]).data
            return builder.ptrtoint(data, ir.IntType(64))

        return sig, codegen

    @intrinsic
    def load1(typingctx: Any, address: Any) -> Any:
        sig = types.uint8(types.intp)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.load(_pointer(builder, args[0], ir.IntType(8)), align=1)

        return sig, codegen

    def _load(width: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.load(_pointer(builder, args[0], width), align=1)

        return codegen

    @intrinsic
    def load_u64(typingctx: Any, address: Any) -> Any:
        return types.uint64(types.intp), _load(ir.IntType(64))

    @intrinsic
    def load_i64(typingctx: Any, address: Any) -> Any:
        return types.int64(types.intp), _load(ir.IntType(64))

    @intrinsic
    def load_f64(typingctx: Any, address: Any) -> Any:
        return types.float64(types.intp), _load(ir.DoubleType())

    @intrinsic
    def store1(typingctx: Any, address: Any, byte: Any) -> Any:
        sig = types.void(types.intp, types.uint8)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            builder.store(args[1], _pointer(builder, args[0], ir.IntType(8)), align=1)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def store8(typingctx: Any, address: Any, word: Any) -> Any:
        """The 8 bytes of ``word``, little-endian, at ``address`` (unaligned): eight digits
        as one store instead of eight."""
        sig = types.void(types.intp, types.uint64)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            builder.store(args[1], _pointer(builder, args[0], ir.IntType(64)), align=1)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def store(typingctx: Any, address: Any, value: Any) -> Any:
        """``value`` at ``address`` in its own machine type (a float64, an int64, an int8...)."""
        if not isinstance(value, types.Integer | types.Float | types.Boolean):
            return None
        sig = types.void(types.intp, value)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            kind = context.get_value_type(signature.args[1])
            builder.store(args[1], _pointer(builder, args[0], kind), align=1)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic
    def move16(typingctx: Any, target: Any, source: Any) -> Any:
        """16 bytes from ``source`` to ``target`` as one unaligned vector load and store."""
        sig = types.void(types.intp, types.intp)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            vector = ir.VectorType(ir.IntType(8), 16)
            value = builder.load(_pointer(builder, args[1], vector), align=1, typ=vector)
            builder.store(value, _pointer(builder, args[0], vector), align=1)
            return context.get_dummy_value()

        return sig, codegen


# CPython's documented way to fill a bytes object in place: PyBytes_FromStringAndSize(NULL, n)
# makes one with uninitialised contents, which may be written through PyBytes_AsString until
# it is shared. Private prototypes, so ctypes.pythonapi's shared ones are left alone.
_bytes_from_size = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_ssize_t)(
    ("PyBytes_FromStringAndSize", ctypes.pythonapi)
)
_bytes_address = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object)(
    ("PyBytes_AsString", ctypes.pythonapi)
)


def new_bytes(size: int) -> tuple[bytes, np.ndarray]:
    """A new ``bytes`` of ``size`` uninitialised bytes and a writable uint8 view of them.

    Fill the view completely before the bytes object is shared, and drop the view after.
    """
    result: bytes = _bytes_from_size(None, size)
    if size == 0:
        return result, np.zeros(0, dtype=np.uint8)
    address = _bytes_address(result)
    return result, np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(address))


def scratch(size: int) -> np.ndarray:
    """``size`` bytes of anonymous memory as a uint8 array, committed page by page as they
    are first written, and unmapped with the array.

    Not ``np.empty``: numpy asks Linux for transparent huge pages on large arrays, and where
    memory is fragmented (another process churning buffers) each 2 MiB fault then compacts
    memory synchronously, which cost several times the encoding itself in a mixed run.
    Private, not mmap's default shared mapping: a shared anonymous page lives in shmem, and
    its first write costs half as much again.
    """
    return np.frombuffer(_private_map(size), dtype=np.uint8)[:size]


def _private_map(size: int) -> mmap.mmap:
    return mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


# Linux's lazy free (4.5+): pages stay mapped and are reclaimed only under memory pressure; a
# page written again before that is simply kept, without a fault.
_MADV_FREE: int | None = getattr(mmap, "MADV_FREE", None)


class KeptScratch:
    """Scratch memory (``scratch``) kept from one call to the next, for a caller that writes
    hundreds of megabytes of it per call: committing a page (its first write, a fault) costs
    more than the encoding writing it, and a new ``scratch`` pays that again on every call.

    ``taken(size)`` lends the kept mapping (grown when too small); when the caller is done,
    its pages are given back to Linux as lazily free (``MADV_FREE``): reclaimed only when
    memory runs short, rewritten in place otherwise. A request above ``keep_max`` bytes, or one
    made while another thread holds the mapping, gets a ``scratch`` of its own.
    """

    def __init__(self, keep_max: int) -> None:
        self._keep_max = keep_max
        self._lock = threading.Lock()
        self._map: mmap.mmap | None = None

    @contextmanager
    def taken(self, size: int) -> Iterator[np.ndarray]:
        """``size`` bytes of uninitialised scratch for the ``with`` block; nothing may keep
        the array (or a view of it) past the block."""
        if _MADV_FREE is None or size > self._keep_max or not self._lock.acquire(blocking=False):
            yield scratch(size)
            return
        try:
            if self._map is None or len(self._map) < size:
                self._map = None  # unmapped once the last view of it is gone
                self._map = _private_map(size)
            yield np.frombuffer(self._map, dtype=np.uint8)[:size]
        finally:
            try:
                if self._map is not None:
                    self._map.madvise(_MADV_FREE)
            except OSError:  # a kernel without lazy free: keep nothing
                self._map = None
            finally:
                self._lock.release()
