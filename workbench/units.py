"""Parsing and printing of sizes as kernel people write them (4K, 64K, 2M, 1G), and of the
kernel's cpu/node lists (0-2,5)."""

from .errors import WorkbenchError

_SUFFIX = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
           "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}


def parse_size(text, what: str = "size") -> int:
    """'64M' -> 67108864. Binary units, as the kernel's mTHP directory names use."""
    if isinstance(text, int):
        if text <= 0:
            raise WorkbenchError(f"{what} {text} must be positive")
        return text
    s = str(text).strip().upper()
    num = s.rstrip("KMGIB")
    suffix = s[len(num):]
    if suffix not in _SUFFIX or not num.isdigit() or int(num) <= 0:
        raise WorkbenchError(f"{what} {text!r} is not a size; write a positive number with K, M or G (e.g. 4K, 64M)")
    return int(num) * _SUFFIX[suffix]


def format_size(nbytes: int) -> str:
    """67108864 -> '64M'; keeps the largest unit that divides exactly."""
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes % factor == 0:
            return f"{nbytes // factor}{unit}"
    return str(nbytes)


def parse_size_list(text, what: str = "size") -> list[int]:
    """'4K,64K,2M' -> [4096, 65536, 2097152]."""
    if isinstance(text, (list, tuple)):
        return [parse_size(t, what) for t in text]
    return [parse_size(t, what) for t in str(text).split(",") if t.strip()]


def parse_cpulist(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] (the kernel's cpulist/nodelist format)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out
