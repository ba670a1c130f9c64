"""Every knob of a trial, declared once: what the CLI, a sweep, the panel, a trial's key
and its record call it, how its text is read, its bounds and its unit.

A knob is something a trial is asked to do (how many mtcopy threads, which workload, the
monitor's interval). Each entry of :data:`KNOBS` says, for one knob:

- ``name``: the field of :class:`workbench.protocol.Knobs` (the host's run parameters and
  the target's trial spec are built from this catalogue), and its ``default``;
- ``flag`` and ``help``: the ``workbench run`` option (:func:`add_arguments` makes them,
  :func:`from_args` reads them back);
- ``sweep`` and ``plural``: the grid key of a sweep (``batch_sizes``), and whether a grid
  gives it as a list whose every value is a run of its own (``sweep_default``: a sweep's
  default, where it is lighter than a single run's);
- ``parse`` and ``bounds``: text (a flag, a grid's YAML, a notebook parameter) into a
  value, and the values allowed;
- ``tag``: the knob's part of a trial's key (``-b64``), in the key's ``head`` (after the
  migrator) or ``tail`` (after the repeat), empty at the value that keeps older keys;
- ``column``, ``unit`` and ``label``: the record's column, and how tables, plots and
  widgets name it; ``config``: whether ``compare`` pairs trials by it.

Run-level knobs (``folio_sizes``, ``repeats``) are a run's, not a trial's: a trial has one
folio size and one repeat number. The rules between knobs (threads only for mtcopy, a
source other than the destination) are :meth:`workbench.protocol.Knobs.check`'s.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import WorkbenchError
from ..units import format_size, parse_size, parse_size_list

#: the monitor's interval (workbench.agent.monitor): the default, and the bounds
MONITOR_DEFAULT_MS, MONITOR_MIN_MS, MONITOR_MAX_MS = 10.0, 1.0, 10_000.0
#: how threads touch the memory while it migrates (see workbench.agent.access)
ACCESS_MODES = ("none", "read", "write")
ACCESS_THREADS_BOUNDS = (1, 64)
#: how long a waiting workload (numa-balancing, demotion's promotion) may wait, seconds
WAIT_SECONDS_MAX = 3600


# -- reading a knob's text ----------------------------------------------------------------

def _int(label: str):
    def parse(value):
        if value is None or isinstance(value, bool):
            raise WorkbenchError(f"{label} {value!r} is not an integer")
        try:
            n = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise WorkbenchError(f"{label} {value!r} is not an integer") from None
        return n
    return parse


def _optional(parse):
    """None, or an empty text / 'none' / 'default' (a notebook's or grid's way to say the
    kernel's default), stays None."""
    def read(value):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "default")):
            return None
        return parse(value)
    return read


def _float(label: str):
    def parse(value):
        if isinstance(value, bool):
            raise WorkbenchError(f"{label} {value!r} is not a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise WorkbenchError(f"{label} {value!r} is not a number") from None
    return parse


def _bool(label: str):
    def parse(value):
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise WorkbenchError(f"{label} {value!r} is not true or false")
    return parse


def _word(label: str):
    def parse(value):
        if not isinstance(value, str) or not value.strip():
            raise WorkbenchError(f"{label} {value!r} is not a name")
        return value.strip()
    return parse


def parse_monitor(text) -> float | None:
    """``--monitor``: ``off``, or the interval as 10ms, 0.5s, 200us or a bare number of
    milliseconds; returns milliseconds (None: off)."""
    if text is None or isinstance(text, bool):
        return None if text is None else MONITOR_DEFAULT_MS if text else None
    if isinstance(text, (int, float)):
        text = f"{text}ms"
    word = str(text).strip().lower()
    if word in ("off", "none", "no"):
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(us|ms|s)?", word)
    if not m:
        raise WorkbenchError(f"--monitor {text!r} is not an interval; allowed: off, or {MONITOR_MIN_MS:g}ms to "
                             f"{MONITOR_MAX_MS / 1000:g}s such as 10ms or 0.5s")
    ms = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, None: 1.0}[m.group(2)]
    if not MONITOR_MIN_MS <= ms <= MONITOR_MAX_MS:
        raise WorkbenchError(f"--monitor {text!r} is out of range; allowed: off, or {MONITOR_MIN_MS:g}ms to "
                             f"{MONITOR_MAX_MS / 1000:g}s")
    return ms


def parse_settings(items) -> dict | None:
    """``--set PATH=VALUE`` (repeatable) into {path: value}; a mapping passes as it is."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()} or None
    if isinstance(items, str):
        items = [items]
    out = {}
    for item in items or ():
        path, sep, value = str(item).partition("=")
        if not sep or not path:
            raise WorkbenchError(f"--set {item!r} is not PATH=VALUE; for example "
                                 f"--set /sys/module/test_dma_engine/parameters/fail_every=7")
        out[path] = value
    return out or None


def _settings_tag(settings) -> str:
    return "-set" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


# -- the catalogue ------------------------------------------------------------------------

#: how ``workbench run`` takes a knob: a value, a flag that turns it on (or off), a
#: --x/--no-x pair, or a repeatable option
VALUE, FLAG_ON, FLAG_OFF, BOTH_WAYS, REPEATED = "value", "flag_on", "flag_off", "both_ways", "repeated"

_MISSING = object()


@dataclass(frozen=True)
class Knob:
    name: str
    type: Any
    default: Any
    flag: str
    help: str
    label: str
    parse: Callable[[Any], Any]
    sweep: str | None = None
    plural: bool = False
    sweep_default: Any = _MISSING
    cli: str = VALUE
    metavar: str | None = None
    #: what the CLI shows for the default (its text form), where it differs from ``default``
    cli_default: Any = _MISSING
    bounds: tuple | None = None
    choices: tuple | None = None
    #: (value, the whole spec) -> this knob's part of a trial key; None: not in the key
    tag: Callable[[Any, Any], str] | None = None
    #: where in the key: ``head`` (after the migrator) or ``tail`` (after the repeat), and
    #: the place there (the order keys have had since runs were first stored: resume)
    key_part: str = "tail"
    key_rank: int = 0
    column: str | None = None
    unit: str | None = None
    #: compare pairs trials by this column
    config: bool = False
    #: a trial's knob (in Knobs) or a run's (folio sizes, repeats)
    scope: str = "trial"

    @property
    def sweep_key(self) -> str:
        return self.sweep or self.name

    @property
    def grid_default(self):
        """What a sweep assumes when a grid does not say (a list for a plural knob)."""
        if self.sweep_default is not _MISSING:
            return self.sweep_default
        return [self.default] if self.plural else self.default

    def read(self, value):
        """``value`` (text or already a value) as this knob's value; one line if it is not one."""
        return self.parse(value)


def _tag(prefix: str):
    return lambda v, spec: f"-{prefix}{v}" if v is not None else ""


KNOBS: tuple[Knob, ...] = (
    Knob("workload", str, "move-pages", "--workload", label="workload", parse=_word("workload"),
         sweep="workloads", plural=True, column="workload", config=True,
         help="how the pages migrate: move-pages (default), migrate-pages, mbind, numa-balancing, demotion, "
              "compaction (workbench doctor --target ... says which this target can run)"),
    Knob("access", str, "none", "--access", label="access", parse=_word("access"), choices=ACCESS_MODES,
         column="access", config=True,
         key_rank=3, tag=lambda v, spec: f"-a{v}{spec.access_threads}" if v != "none" else "",
         help="threads that keep reading or writing the memory while it migrates, checked: none (default), "
              "read, write"),
    Knob("access_threads", int, 2, "--access-threads", label="access threads", parse=_int("access threads"),
         bounds=ACCESS_THREADS_BOUNDS, column="access_threads", unit="threads",
         help="how many such threads (default %(default)s)"),
    Knob("wait_seconds", float | None, None, "--wait-seconds", label="wait seconds",
         parse=_optional(_float("wait seconds")), bounds=(0, WAIT_SECONDS_MAX), unit="s",
         key_rank=4, tag=lambda v, spec: f"-w{v:g}" if v is not None else "",
         help="numa-balancing, demotion's promotion: how long to wait for the kernel at most (default 120)"),
    Knob("trace", bool, True, "--no-trace", label="trace", parse=_bool("trace"), cli=FLAG_OFF, column="trace",
         key_rank=5, tag=lambda v, spec: "" if v else "-notrace",
         help="do not record the kernel's migration trace events (tracefs)"),
    Knob("monitor_ms", float | None, MONITOR_DEFAULT_MS, "--monitor", label="monitor interval", parse=parse_monitor,
         sweep="monitor", metavar="off|INTERVAL", cli_default="10ms", bounds=(MONITOR_MIN_MS, MONITOR_MAX_MS),
         column="monitor_interval_ms", unit="ms",
         key_rank=6, tag=lambda v, spec: "-nomon" if v is None else "" if v == MONITOR_DEFAULT_MS else f"-mon{v:g}",
         help="sample /proc/vmstat, /proc/interrupts and per-CPU busy time during each trial at this interval, "
              "stored beside the records with its measured cost (default %(default)s)"),
    Knob("folio_sizes", list, [4096, 65536, 2 << 20], "--folio-size", label="folio size",
         parse=lambda v: parse_size_list(v, "folio size"), cli_default="4K,64K,2M", sweep_default=["4K", "2M"],
         scope="run", column="folio_size", unit="bytes", config=True,
         help="comma-separated folio sizes (default %(default)s)"),
    Knob("total_size", int, 64 << 20, "--size", label="size", parse=lambda v: parse_size(v, "size"),
         cli_default="64M", sweep_default="16M", column="total_bytes", unit="bytes",
         help="bytes moved per trial (default %(default)s)"),
    Knob("repeats", int, 3, "--repeats", label="repeats", parse=_int("repeats"), bounds=(1, None), scope="run",
         help="trials of each folio size (default %(default)s)"),
    Knob("src", int, 0, "--src", label="source node", parse=_int("source node"), bounds=(0, None), column="src",
         help="source node (default %(default)s)"),
    Knob("dst", int | None, 1, "--dst", label="destination node", parse=_optional(_int("destination node")),
         cli_default=None, sweep_default=None, bounds=(0, None), column="dst",
         help="destination node (default 1; demotion: the kernel's lower tier; compaction: none)"),
    Knob("seed", int, 1, "--seed", label="seed", parse=_int("seed"), bounds=(0, None), column="seed",
         help="seed of the data pattern (default %(default)s)"),
    Knob("migrator", str, "kernel", "--migrator", label="migrator", parse=_word("migrator"), sweep="migrators",
         plural=True, column="migrator", config=True,
         help="copy engine: kernel (always), mtcopy, dcbm (patched kernel; see workbench doctor)"),
    Knob("threads", int | None, None, "--threads", label="threads", parse=_optional(_int("threads")),
         plural=True, bounds=(1, None), key_rank=1, tag=_tag("t"), key_part="head", column="threads", unit="threads",
         config=True, help="mtcopy worker threads (patched kernel); in a sweep, dcbm's channels too unless "
                           "channels is given"),
    Knob("channels", int | None, None, "--channels", label="channels", parse=_optional(_int("channels")),
         plural=True, sweep_default=None, bounds=(1, None), key_rank=2, tag=_tag("c"), key_part="head", column="channels",
         unit="channels", config=True, help="dcbm DMA channels (patched kernel)"),
    Knob("batch_size", int | None, None, "--batch-size", label="batch size", parse=_optional(_int("batch size")),
         sweep="batch_sizes", plural=True, bounds=(1, None), key_rank=3, tag=_tag("b"), key_part="head", column="batch_size",
         unit="base pages", config=True,
         help="migrate_pages() batch limit in base pages (patched kernel; default the kernel's)"),
    Knob("batch_kernel_copy", bool | None, None, "--batch-kernel-copy", label="batch kernel copy",
         parse=_optional(_bool("batch kernel copy")), cli=BOTH_WAYS, column="batch_kernel_copy",
         key_rank=4, tag=lambda v, spec: f"-bk{int(v)}" if v is not None else "", key_part="head",
         help="migrator kernel: copy through the batched path too (patched kernel; by default it keeps the "
              "unchanged serial path), to measure the batch path's own cost"),
    Knob("dma_engine", str | None, None, "--dma-engine", label="DMA engine", parse=_optional(_word("DMA engine")),
         metavar="MODULE", column="dma_engine", config=True, key_rank=2, tag=lambda v, spec: f"-e{v}" if v else "",
         help="module with DMA memcpy channels to load for dcbm (default in a VM: test_dma_engine, a test-only "
              "engine whose channels are kernel threads)"),
    Knob("settings", dict | None, None, "--set", label="settings", parse=parse_settings, cli=REPEATED,
         metavar="PATH=VALUE", column="settings", config=True,
         key_rank=7, tag=lambda v, spec: _settings_tag(v) if v else "",
         help="one more sysfs setting per trial, restored after it (repeatable), e.g. "
              "/sys/module/test_dma_engine/parameters/fail_every=7"),
    Knob("first_folio", bool, False, "--first-folio-latency", label="first-folio latency",
         parse=_bool("first folio"), cli=FLAG_ON, key_rank=1, tag=lambda v, spec: "-ff" if v else "",
         help="also time until the first folio is on the destination (a polling thread)"),
)

BY_NAME = {k.name: k for k in KNOBS}
BY_SWEEP_KEY = {k.sweep_key: k for k in KNOBS}
#: the knobs of one trial (the fields of workbench.protocol.Knobs), in catalogue order
TRIAL_KNOBS = tuple(k for k in KNOBS if k.scope == "trial")


def get(name: str) -> Knob:
    try:
        return BY_NAME[name]
    except KeyError:
        raise WorkbenchError(f"knob {name!r} is not known; allowed: {', '.join(BY_NAME)}") from None


def default(name: str):
    return BY_NAME[name].default


# -- the surfaces -------------------------------------------------------------------------

def add_arguments(parser) -> None:
    """``workbench run``'s knob options, one per knob, in catalogue order. Each option's
    value stays text (None when not given) until :func:`from_args` reads it."""
    import argparse
    for k in KNOBS:
        shown = k.cli_default if k.cli_default is not _MISSING else k.default
        kw = {"dest": k.name, "help": k.help}
        if k.cli == FLAG_ON or k.cli == FLAG_OFF:
            kw["action"] = "store_true"
        elif k.cli == BOTH_WAYS:
            kw.update(action=argparse.BooleanOptionalAction, default=None)
        elif k.cli == REPEATED:
            kw.update(action="append", metavar=k.metavar)
        else:
            kw.update(metavar=k.metavar or k.flag.lstrip("-").upper().replace("-", "_"))
            if shown is not None:
                kw["default"] = shown
        parser.add_argument(k.flag, **kw)


def from_args(args) -> dict:
    """{knob: value} from the options :func:`add_arguments` made."""
    out = {}
    for k in KNOBS:
        raw = getattr(args, k.name)
        if k.cli == FLAG_ON:
            out[k.name] = bool(raw)
        elif k.cli == FLAG_OFF:
            out[k.name] = not raw
        else:
            out[k.name] = k.parse(raw)     # every parse of an option without a default takes None
    return out


def key_parts(spec, part: str) -> str:
    """The knobs' part of a trial key, ``head`` or ``tail``, in catalogue order."""
    tagged = sorted((k for k in TRIAL_KNOBS if k.tag and k.key_part == part), key=lambda k: k.key_rank)
    return "".join(k.tag(getattr(spec, k.name), spec) for k in tagged)


def record_columns(spec) -> dict:
    """The record's knob columns for one trial (what it was asked to do)."""
    out = {}
    for k in TRIAL_KNOBS:
        if k.column is None or k.name == "monitor_ms":   # the monitor records the interval it kept
            continue
        value = getattr(spec, k.name)
        if k.name == "settings":
            value = " ".join(f"{p}={v}" for p, v in sorted((value or {}).items())) or None
        elif k.name == "access_threads" and spec.access == "none":
            value = 0
        out[k.column] = value
    return out


def config_columns() -> tuple[str, ...]:
    """The record columns ``compare`` pairs trials by, in catalogue order; a migrator's
    worker knobs (threads or channels) are one column, ``workers``, and folio sizes are
    compared by name (``folio``), last."""
    out = []
    for k in KNOBS:
        col = {"threads": "workers", "channels": "workers"}.get(k.column, k.column)
        if k.config and col not in out and col != "folio_size":
            out.append(col)
    return (*out, "folio")


def unit_of(column: str) -> str | None:
    return next((k.unit for k in KNOBS if k.column == column), None)


def label_of(column: str) -> str:
    return next((k.label for k in KNOBS if k.column == column), column.replace("_", " "))


def plain_help(k: Knob) -> str:
    """The knob's help as a sentence (a widget's tooltip): its default filled in."""
    return k.help % {"default": describe_default(k)}


def as_text(k: Knob, value) -> str:
    """A value as the text a form shows and :meth:`Knob.read` reads back ('' for None)."""
    if value is None:
        return ""
    if k.name == "settings":
        return " ".join(f"{p}={v}" for p, v in value.items())
    if k.name == "monitor_ms":
        return f"{value:g}ms"
    if isinstance(value, list):
        return ",".join(format_size(v) for v in value)
    return format_size(value) if k.unit == "bytes" else f"{value:g}" if isinstance(value, float) else str(value)


def default_text(k: Knob) -> str:
    """What a form shows before it is changed: the CLI's default ('' where the default
    depends on something else, such as the destination on the workload)."""
    shown = k.cli_default if k.cli_default is not _MISSING else k.default
    return shown if isinstance(shown, str) else as_text(k, shown)


def read_text(k: Knob, text: str):
    """What :func:`as_text` wrote (a repeated option's values separated by blanks)."""
    if k.cli == REPEATED:
        return k.read(str(text).split())
    return k.read(text)


def describe_default(k: Knob) -> str:
    v = k.cli_default if k.cli_default is not _MISSING else k.default
    if isinstance(v, list):
        return ",".join(format_size(x) if isinstance(x, int) else str(x) for x in v)
    return "the kernel's" if v is None else str(v)
