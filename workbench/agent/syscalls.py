"""Thin ctypes bindings for the memory system calls a trial needs (x86-64 Linux).

Private anonymous memory is mapped here, not with :mod:`mmap` (whose ``mmap(-1, n)``
is MAP_SHARED, i.e. shmem, which gets no anonymous THP), and aligned to the folio
size so that a fault can be served with one folio of that size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import numpy as np

from ..errors import WorkbenchError

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long

PROT_READ, PROT_WRITE = 1, 2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
MAP_FAILED = ctypes.c_void_p(-1).value
MADV_HUGEPAGE, MADV_NOHUGEPAGE = 14, 15
MPOL_DEFAULT, MPOL_PREFERRED, MPOL_BIND = 0, 1, 2
MPOL_MF_MOVE = 1 << 1
MAXNODE = 1024
#: capability(7) number of CAP_SYS_NICE: with it, migrate_pages(2) moves shared pages too
CAP_SYS_NICE = 23

# x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl)
_SYSCALLS = {"x86_64": {"mbind": 237, "move_pages": 279, "getppid": 110, "userfaultfd": 323,
                        "migrate_pages": 256, "capget": 125, "capset": 126}}


def _nr(name: str) -> int:
    arch = platform.machine()
    try:
        return _SYSCALLS[arch][name]
    except KeyError:
        raise WorkbenchError(f"architecture {arch!r} is not supported; supported: {', '.join(_SYSCALLS)}") from None


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


class AnonRegion:
    """``size`` bytes of private anonymous memory whose start is aligned to ``align``."""

    def __init__(self, size: int, align: int):
        self.size, self.align = size, align
        raw_len = size + align
        raw = _libc.mmap(None, raw_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if raw in (None, MAP_FAILED):
            err = ctypes.get_errno()
            raise OSError(err, f"mmap of {raw_len} bytes: {os.strerror(err)}")
        start = (raw + align - 1) & ~(align - 1)
        head, tail = start - raw, raw + raw_len - (start + size)
        if head:
            _libc.munmap(raw, head)
        if tail:
            _libc.munmap(start + size, tail)
        self.addr = start

    def words(self) -> np.ndarray:
        """The region as a numpy uint64 array (no copy)."""
        buf = (ctypes.c_uint64 * (self.size // 8)).from_address(self.addr)
        return np.ctypeslib.as_array(buf)

    def madvise(self, advice: int):
        _check(_libc.madvise(self.addr, self.size, advice), "madvise")

    def bind(self, node: int):
        """mbind(MPOL_BIND) to one node, before first touch."""
        self.mbind(MPOL_BIND, [node])

    def mbind(self, mode: int, nodes=(), flags: int = 0) -> int:
        """mbind(2) of the whole region: ``mode`` over ``nodes`` (none for MPOL_DEFAULT);
        ``flags`` MPOL_MF_MOVE moves the pages already there (reason MR_MEMPOLICY_MBIND)."""
        return self.prepared_mbind(mode, nodes, flags)()

    def prepared_mbind(self, mode: int, nodes=(), flags: int = 0):
        """The same mbind(2) call with its arguments built beforehand (for a timer)."""
        mask = nodemask(nodes)
        args = (ctypes.c_long(_nr("mbind")), ctypes.c_void_p(self.addr), ctypes.c_ulong(self.size), mode,
                mask if nodes else None, ctypes.c_ulong(MAXNODE + 1 if nodes else 0), ctypes.c_uint(flags))

        def call(args=args, mask=mask) -> int:
            return _check(_libc.syscall(*args), "mbind")
        return call

    def close(self):
        if self.addr:
            _libc.munmap(self.addr, self.size)
            self.addr = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def nodemask(nodes) -> ctypes.Array:
    """A kernel nodemask (unsigned long bits) of MAXNODE bits with ``nodes`` set."""
    mask = (ctypes.c_ulong * (MAXNODE // 64))()
    for node in nodes:
        mask[node // 64] |= 1 << (node % 64)
    return mask


class MigratePages:
    """A prepared ``migrate_pages(2)`` call: every page of process ``pid`` on the ``old``
    nodes to the ``new`` nodes, as migratepages(8) does (reason MR_SYSCALL)."""

    def __init__(self, pid: int, old, new):
        self.old, self.new = nodemask(old), nodemask(new)
        self._args = (ctypes.c_long(_nr("migrate_pages")), ctypes.c_int(pid), ctypes.c_ulong(MAXNODE + 1),
                      self.old, self.new)

    def __call__(self) -> int:
        """The number of pages that could not be moved (0: all); raises on error."""
        return _check(_libc.syscall(*self._args), "migrate_pages")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class without_capability:
    """Drop one capability from this *thread's* effective set for a block, then take it
    back (capabilities are per thread; the permitted set is left alone). Does nothing
    when the thread does not have it."""

    def __init__(self, cap: int):
        self.cap = cap
        self.header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        self.data = (_CapData * 2)()
        self.dropped = False

    def __enter__(self):
        if _libc.syscall(_nr("capget"), ctypes.byref(self.header), self.data) != 0:
            return self
        word, bit = divmod(self.cap, 32)
        if self.data[word].effective & (1 << bit):
            self.data[word].effective &= ~(1 << bit)
            _check(_libc.syscall(_nr("capset"), ctypes.byref(self.header), self.data), "capset")
            self.dropped = True
        return self

    def __exit__(self, *exc):
        if self.dropped:
            word, bit = divmod(self.cap, 32)
            self.data[word].effective |= 1 << bit
            _check(_libc.syscall(_nr("capset"), ctypes.byref(self.header), self.data), "capset")
        return False


class MovePages:
    """A prepared ``move_pages(2)`` call: addresses, target nodes and status arrays
    are built beforehand so the timed call does nothing but the system call."""

    def __init__(self, addresses: np.ndarray, node: int | None):
        self.count = len(addresses)
        self.pages = np.ascontiguousarray(addresses, dtype=np.uint64)
        self.status = np.full(self.count, -1, dtype=np.int32)
        self.nodes = None if node is None else np.full(self.count, node, dtype=np.int32)
        self._args = (
            ctypes.c_long(_nr("move_pages")), 0, ctypes.c_ulong(self.count),
            self.pages.ctypes.data_as(ctypes.c_void_p),
            None if self.nodes is None else self.nodes.ctypes.data_as(ctypes.c_void_p),
            self.status.ctypes.data_as(ctypes.c_void_p), MPOL_MF_MOVE,
        )

    def __call__(self) -> int:
        """Returns the syscall's result: 0, or the number of pages not moved. Raises on error."""
        return _check(_libc.syscall(*self._args), "move_pages")

    def stall(self) -> None:
        """Test hook: make this call block in the kernel for good. Its status array is
        moved to memory registered with a userfaultfd that nobody serves, so the kernel,
        once it has migrated the first pages, waits forever to store their status."""
        self._args = self._args[:5] + (ctypes.c_void_p(_unserved_memory(self.count * 4)),) + self._args[6:]


#: keeps the userfaultfd and its memory of :meth:`MovePages.stall` open
_STALLS: list = []


def _unserved_memory(size: int) -> int:
    """Anonymous memory registered (missing mode) with a userfaultfd that is never read."""
    size = max(4096, (size + 4095) & ~4095)
    uffd = _check(_libc.syscall(_nr("userfaultfd"), os.O_CLOEXEC), "userfaultfd")
    api = (ctypes.c_uint64 * 3)(0xAA, 0, 0)                       # struct uffdio_api
    _check(_libc.ioctl(uffd, ctypes.c_ulong(0xC018AA3F), api), "UFFDIO_API")
    addr = _libc.mmap(None, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    if addr in (None, MAP_FAILED):
        raise OSError(ctypes.get_errno(), "mmap for the stall")
    reg = (ctypes.c_uint64 * 4)(addr, size, 1, 0)                 # struct uffdio_register, MODE_MISSING
    _check(_libc.ioctl(uffd, ctypes.c_ulong(0xC020AA00), reg), "UFFDIO_REGISTER")
    _STALLS.append((uffd, addr))
    return addr


class NullCall(MovePages):
    """The same prepared ctypes call as :class:`MovePages`, but of getppid(2): what the
    timer and the call path cost by themselves. (An empty move_pages is no such
    baseline: the kernel drains every CPU's LRU caches even for zero pages.)"""

    def __init__(self):
        super().__init__(np.empty(0, dtype=np.uint64), 0)
        self._args = (ctypes.c_long(_nr("getppid")),) + self._args[1:]


def page_nodes(addr: int, npages: int, page_size: int = 4096) -> np.ndarray:
    """The node of every base page in [addr, addr + npages*page_size): move_pages with
    nodes=NULL; a negative value is -errno (e.g. -ENOENT: not present)."""
    query = MovePages(addr + np.arange(npages, dtype=np.uint64) * page_size, None)
    query()
    return query.status.copy()
