"""A dead guest's panic log, read by the host from the file behind the guest's ramoops.

A VM's agent puts ramoops (``fs/pstore/ram.c``) on the BAR of an ``ivshmem-plain``
device that QEMU backs with ``<vm dir>/pstore.img`` (``share=on``), laid out as
:data:`workbench.protocol.PSTORE_SIZE` and ``PSTORE_RECORD_SIZE`` say. When the guest
panics, the kernel's kmsg dumper writes the log's tail into that memory before the
reboot that ends QEMU, so the file holds it even when the console lost it. The host
clears the file before each boot, so whatever it holds after QEMU has exited is that
boot's.

The layout read here (Linux 3.x on, unchanged through 6.12): each record zone starts with
``struct persistent_ram_buffer`` (``sig`` = 0x43474244 "DBGC" for a dmesg zone, ``start``,
``size``, both u32 little-endian) followed by its data, a ring: the text is
``data[start:size] + data[:start]``. A dmesg record's text begins with ramoops' header,
``====<sec>.<usec>-<D|C>\\n`` (``C``: deflate-compressed, raw, as pstore compresses
when ``pstore.compress`` is not ``none``), then pstore's ``<Reason>#<n> Part<k>`` line;
a long log is split into parts, Part1 the newest.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..protocol import PSTORE_RECORD_SIZE, PSTORE_SIZE

SIG = 0x43474244
_HEADER = struct.Struct("<III")
_KMSG = re.compile(rb"^====(\d+)\.(\d+)(?:-([CD]))?\n")
_PART = re.compile(r"^(\w+)#(\d+) Part(\d+)\n")
_LEVEL = re.compile(r"^<\d+>", re.M)


@dataclass
class Record:
    reason: str          # "Panic", "Oops", ...
    count: int           # the dump's number since boot (pstore's counter)
    part: int            # 1 is the newest part of the log
    seconds: float       # when it was written (guest wall clock)
    text: str


def clear(path: Path, size: int = PSTORE_SIZE) -> None:
    """An empty region of ``size`` bytes (before a boot): no zone has a signature, so
    ramoops starts every zone afresh."""
    with open(path, "wb") as f:
        f.truncate(size)


def records(path: Path, record_size: int = PSTORE_RECORD_SIZE) -> list[Record]:
    """Every dmesg record in the region, oldest dump first and each dump's parts in
    reading order (highest part first)."""
    try:
        blob = Path(path).read_bytes()
    except OSError:
        return []
    out = []
    for off in range(0, len(blob) - _HEADER.size + 1, record_size):
        sig, start, size = _HEADER.unpack_from(blob, off)
        cap = record_size - _HEADER.size
        if sig != SIG or size == 0 or size > cap or start > cap:
            continue
        data = blob[off + _HEADER.size: off + record_size]
        raw = data[start:size] + data[:start] if start < size else data[:size]
        rec = _parse(raw)
        if rec:
            out.append(rec)
    return sorted(out, key=lambda r: (r.seconds, r.count, -r.part))


def _parse(raw: bytes) -> Record | None:
    m = _KMSG.match(raw)
    if not m:
        return None
    body = raw[m.end():]
    if m.group(3) == b"C":
        try:
            body = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body)
        except zlib.error:
            return None
    text = body.decode(errors="replace")
    p = _PART.match(text)
    reason, count, part = (p.group(1), int(p.group(2)), int(p.group(3))) if p else ("?", 0, 1)
    return Record(reason=reason, count=count, part=part,
                  seconds=int(m.group(1)) + int(m.group(2)) / 10 ** (6 if len(m.group(2)) <= 6 else 9),
                  text=text[p.end():] if p else text)


def panic_log(path: Path) -> str:
    """The log the kernel dumped when it panicked (or oopsed), oldest line first; "" if
    the region holds none. The lines lose the log level pstore writes before each
    (``<6>[   1.5] ...`` reads as the console shows it, ``[   1.5] ...``)."""
    return _LEVEL.sub("", "".join(r.text for r in records(path)))
