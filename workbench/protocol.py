"""The one thing host and target share about a plan.

The host (:mod:`workbench.host`) sends a plan, a JSON object with an ``op``; the agent
(:mod:`workbench.agent`, on the target) answers with JSON events, one per line, and always
ends with ``done``. This module names the ops and events, says which event answers which
op, and defines the knobs of a trial **once**: :class:`Knobs` is the base of both the
host's run parameters (:class:`workbench.host.running.plan.RunParams`: several folio sizes and
repeats) and the target's :class:`TrialSpec` (one folio size, one repeat), so adding a
knob is one field here. :meth:`Knobs.check` judges everything that can be judged without
the target (before a VM boots); :func:`check_knob_bounds` judges a knob against the
bounds a target reported. Both sides call them.

=================  ====================================================  ==============
op                 plan fields                                           answered by
=================  ====================================================  ==============
``probe``          -                                                     ``facts``
``trials``         ``trials``: [TrialSpec dicts], ``warmup``: bool       ``start`` and
                                                                         ``record`` each
``blocked``        ``pids``, ``tids``: the trial's process and thread   ``blocked``
``snapshot``       ``roots``: [dirs]                                     ``snapshot``
``stress``         ``args``: churn arguments                             ``stress``
``sysfs``          ``writes``: [[path, value]], ``reads``: [paths]      ``sysfs``
``bench_verify``   ``args``: {size, repeats}                             ``bench``
``cancel``         ``request``: a plan's id (the VM's agent only)        -
``shutdown``       - (the VM's agent only: it stops serving)            -
=================  ====================================================  ==============

A ``trials`` plan announces each trial before it begins (``start``: ``trial_key``,
``index``, ``pid``, ``tid``), so the host knows which trial is in flight when a target
dies or a trial hangs; ``blocked`` answers with the tasks stuck in the kernel and their
kernel stacks (a VM's agent answers it even while a plan is running). ``cancel`` stops a
VM's plan between two trials (its host went away).

Any op may answer ``error`` (``message``: one line, ``traceback``: optional detail,
``trial_key``: the trial it stopped at), after which nothing but ``done`` follows.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from pathlib import Path

from .catalogue import knobs as catalogue
from .catalogue.knobs import (ACCESS_MODES, ACCESS_THREADS_BOUNDS, MONITOR_MAX_MS, MONITOR_MIN_MS,
                              WAIT_SECONDS_MAX)
from .errors import WorkbenchError
from .units import format_size

PAGE = 4096


class Op:
    PROBE = "probe"
    TRIALS = "trials"
    SNAPSHOT = "snapshot"
    STRESS = "stress"
    SYSFS = "sysfs"
    BENCH_VERIFY = "bench_verify"
    BLOCKED = "blocked"
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"


class Event:
    FACTS = "facts"
    START = "start"
    RECORD = "record"
    SNAPSHOT = "snapshot"
    STRESS = "stress"
    SYSFS = "sysfs"
    BENCH = "bench"
    BLOCKED = "blocked"
    #: a target's own sign of life while it waits for the agent (never from the agent;
    #: :meth:`workbench.targets.base.Target.stream` passes it on only when asked)
    TICK = "tick"
    ERROR = "error"
    DONE = "done"


#: the event that carries an op's answer (``trials`` answers with many ``record`` events)
ANSWER = {Op.PROBE: Event.FACTS, Op.SNAPSHOT: Event.SNAPSHOT, Op.STRESS: Event.STRESS,
          Op.SYSFS: Event.SYSFS, Op.BENCH_VERIFY: Event.BENCH, Op.TRIALS: Event.RECORD,
          Op.BLOCKED: Event.BLOCKED}

#: test hooks: faults a trial makes happen on purpose on the target (TrialSpec.inject_fault)
#: panic      the guest kernel panics (sysrq c) just before the migration
#: poweroff   the guest powers off (sysrq o) just before the migration
#: warn       a WARN-shaped report is written into the kernel log during the trial
#: hang       move_pages() blocks in the kernel for good (its status array is
#:            userfaultfd-registered memory nobody serves)
#: cut_link   the agent kills the sshd session it was started by (an SSH link cut
#:            from the box's side); elsewhere a no-op
#: hold       the trial waits before the migration for good, so that a fault the host
#:            makes (QEMU killed) lands while it is in flight
AGENT_FAULTS = ("panic", "poweroff", "warn", "hang", "cut_link", "hold")

#: The panic record a VM keeps for the host (a VM target's agent arms it at start): ramoops
#: in the BAR of QEMU's ``ivshmem-plain`` device (PCI 1af4:1110), which QEMU backs with a
#: file the host reads once QEMU has exited (:mod:`workbench.vm.pstore`). Both sides
#: take the region's layout from here: its size and ramoops' dmesg record size (every
#: record a zone of that size, none for console, ftrace or pmsg).
PSTORE_DEVICE = ("0x1af4", "0x1110")
PSTORE_SIZE = 1 << 20
PSTORE_RECORD_SIZE = 64 << 10

#: the knobs a kernel's migration interface may have (its ``knobs()`` gives their bounds)
INTERFACE_KNOBS = ("threads", "channels", "batch_size", "batch_kernel_copy")

#: which migrator takes which worker knob: mtcopy's CPU threads, dcbm's DMA channels
#: (the kernel's own copy takes neither). The one place this is said.
WORKER_KNOB = {"mtcopy": "threads", "dcbm": "channels"}


#: the sub-packages that never run on a target (the host's side, the ways to reach a
#: target, the QEMU VMs, the tests' fakes); everything else under ``workbench/`` is code the
#: agent may run
HOST_ONLY = ("host", "targets", "vm", "testing")


def agent_code_digest(package_dir: str | Path | None = None) -> str:
    """sha256 (16 hex digits) of the agent-side ``.py`` files of the ``workbench`` package
    at ``package_dir`` (default: the one this module belongs to), by relative path and
    content. The agent reports its own in its probe (``agent_code``); the host computes
    it over its checkout; two equal digests mean the target runs this checkout's agent
    (a box prepared with ``workbench target prepare`` before the last change does not)."""
    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        if rel.parts[0] in HOST_ONLY or "__pycache__" in rel.parts:
            continue
        h.update(rel.as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def worker_knob(migrator: str) -> str | None:
    """'threads', 'channels' or None (the kernel's own copy has no workers)."""
    return WORKER_KNOB.get(migrator)


def workers_of(migrator: str, threads=None, channels=None):
    """The worker count a trial used: its threads or channels, whichever its migrator takes."""
    knob = worker_knob(migrator)
    return threads if knob == "threads" else channels if knob == "channels" else None


def worker_fields(migrator: str, workers) -> dict:
    """{'threads': n, 'channels': None} (or the other way round) for ``workers`` of a migrator."""
    knob = worker_knob(migrator)
    return {"threads": workers if knob == "threads" else None,
            "channels": workers if knob == "channels" else None}


def check_folio_size(size: int) -> None:
    if size < PAGE or size & (size - 1):
        raise WorkbenchError(f"folio size {format_size(size)} is not a power of two of at least 4K; "
                             "allowed: 4K, 8K, 16K, ... 2M (what the target offers)")


def check_knob_bounds(knobs: dict, bounds: dict, interface: str, kernel: str | None = None) -> None:
    """``knobs`` {name: value or None} against ``bounds`` {name: (lo, hi) or None}, as a
    target's migration interface reports them."""
    for name, value in knobs.items():
        if value is None:
            continue
        words = name.replace("_", " ")
        b = bounds.get(name)
        if not b:
            whose = f" on kernel {kernel}: its migration interface" if kernel else ": this kernel's interface"
            raise WorkbenchError(f"{words} {value} cannot be set{whose} ({interface}) has no {words} knob")
        if not b[0] <= value <= b[1]:
            raise WorkbenchError(f"{words} {value} is out of range; allowed: {b[0]}..{b[1]}")


class KnobRules:
    """The methods of :class:`Knobs`, whose fields come from the knob catalogue."""

    def interface_knobs(self) -> dict:
        """{knob: value} of the knobs the kernel's migration interface takes (None: not set)."""
        return {k: (int(v) if isinstance(v, bool) else v) for k, v in
                ((k, getattr(self, k)) for k in INTERFACE_KNOBS)}

    def knob_values(self) -> dict:
        """This object's :class:`Knobs` fields only (what a run passes on to each trial)."""
        return {f.name: getattr(self, f.name) for f in fields(Knobs)}

    def check(self) -> None:
        """Everything that can be judged without the target, one line per problem."""
        if not isinstance(self.total_size, int) or self.total_size <= 0:
            raise WorkbenchError(f"size {self.total_size!r} must be a positive number of bytes")
        for role, node in (("source", self.src), ("destination", self.dst)):
            if role == "destination" and node is None:
                continue
            if not isinstance(node, int) or isinstance(node, bool) or node < 0:
                raise WorkbenchError(f"{role} node {node!r} is not a node number (0, 1, ...)")
        if self.src == self.dst:
            raise WorkbenchError(f"source and destination are both node {self.src}; choose two different nodes")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise WorkbenchError(f"seed {self.seed!r} must be a non-negative integer")
        if not isinstance(self.workload, str) or not self.workload.replace("-", "").isalnum():
            raise WorkbenchError(f"workload {self.workload!r} is not a workload name such as move-pages or "
                                 "migrate-pages")
        if self.access not in ACCESS_MODES:
            raise WorkbenchError(f"access {self.access!r} is not known; allowed: {', '.join(ACCESS_MODES)}")
        lo, hi = ACCESS_THREADS_BOUNDS
        if not isinstance(self.access_threads, int) or isinstance(self.access_threads, bool) \
                or not lo <= self.access_threads <= hi:
            raise WorkbenchError(f"access threads {self.access_threads!r} must be an integer from {lo} to {hi}")
        if self.monitor_ms is not None and (isinstance(self.monitor_ms, bool) or not isinstance(self.monitor_ms, (int, float))
                                            or not MONITOR_MIN_MS <= self.monitor_ms <= MONITOR_MAX_MS):
            raise WorkbenchError(f"monitor interval {self.monitor_ms!r} ms is out of range; allowed: "
                                 f"{MONITOR_MIN_MS:g} to {MONITOR_MAX_MS:g} ms, or off")
        if self.wait_seconds is not None and (not isinstance(self.wait_seconds, (int, float))
                                              or not 0 < self.wait_seconds <= WAIT_SECONDS_MAX):
            raise WorkbenchError(f"wait seconds {self.wait_seconds!r} must be a number of seconds, "
                                 f"0 < s <= {WAIT_SECONDS_MAX}")
        if not self.migrator or not str(self.migrator).replace("_", "").isalnum():
            raise WorkbenchError(f"migrator {self.migrator!r} is not a migrator name such as kernel, mtcopy or dcbm")
        for knob in ("threads", "channels", "batch_size"):
            value = getattr(self, knob)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise WorkbenchError(f"{knob.replace('_', ' ')} {value!r} must be a positive integer")
        takes = worker_knob(self.migrator)
        for knob in ("threads", "channels"):
            if getattr(self, knob) is not None and takes != knob:
                users = [m for m, k in WORKER_KNOB.items() if k == knob]
                raise WorkbenchError(f"{knob} {getattr(self, knob)} does not apply to migrator {self.migrator!r}; "
                                     f"{knob} are for {', '.join(users)}")
        if self.batch_kernel_copy is not None and self.migrator != "kernel":
            raise WorkbenchError(f"batch kernel copy applies to migrator 'kernel' only (an offload migrator always "
                                 f"copies in batches); not to {self.migrator!r}")
        for path in self.settings or {}:
            if not str(path).startswith("/sys/") or ".." in str(path):
                raise WorkbenchError(f"setting {path!r} is not a sysfs path; allowed: absolute paths under /sys/")
        if self.dma_engine is not None and (not self.dma_engine or "/" in self.dma_engine
                                            or self.dma_engine.startswith("-") or " " in self.dma_engine):
            raise WorkbenchError(f"DMA engine {self.dma_engine!r} is not a module name; allowed: a name such as "
                                 "test_dma_engine or ioatdma")


def _knob_field(k):
    if isinstance(k.default, (list, dict)):
        return field(default_factory=lambda d=k.default: type(d)(d))
    return field(default=k.default)


#: What a trial is asked to do, besides its folio size and repeat number: one field per
#: trial knob of :data:`workbench.catalogue.knobs.KNOBS` (its default too), and ``extra``
Knobs = make_dataclass("Knobs", [(k.name, k.type, _knob_field(k)) for k in catalogue.TRIAL_KNOBS]
                       + [("extra", dict, field(default_factory=dict))],
                       bases=(KnobRules,), kw_only=True)
Knobs.__module__ = __name__
Knobs.__doc__ = "What a trial is asked to do, besides its folio size and repeat number (the knob catalogue)."


@dataclass(frozen=True)
class TrialId:
    """A trial's identity within a run: ``head`` (migrator and its knobs, folio size, size,
    nodes, seed), the repeat, and ``tail`` (the knobs whose tags follow the repeat). As
    text, ``{head}-r{repeat}{tail}``: the trial key stored records carry; ``config``, the
    same without the repeat, names the configuration."""

    head: str
    repeat: int
    tail: str = ""

    def __str__(self) -> str:
        return f"{self.head}-r{self.repeat}{self.tail}"

    @property
    def config(self) -> str:
        return f"{self.head}{self.tail}"


@dataclass(kw_only=True)
class TrialSpec(Knobs):
    """One repeat at one folio size: what the host sends in a ``trials`` plan."""

    folio_size: int
    repeat: int = 0
    #: test hook: flip one byte after the migration, {"page": p, "offset": o}, so the
    #: verification's report can be checked end to end
    inject_corruption: dict | None = None
    #: test hook: one of AGENT_FAULTS, made to happen during this trial (not in its key)
    inject_fault: str | None = None
    #: test hook: verify against the generation before the writers' last one (a verifier
    #: fed a stale expectation), so the check is shown to fail where it must
    inject_stale: bool = False

    def check(self) -> None:
        super().check()
        check_folio_size(self.folio_size)
        if self.inject_fault is not None and self.inject_fault not in AGENT_FAULTS:
            raise WorkbenchError(f"injected fault {self.inject_fault!r} is not known; allowed: {', '.join(AGENT_FAULTS)}")
        if self.total_size % self.folio_size:
            raise WorkbenchError(f"size {format_size(self.total_size)} is not a multiple of the folio size "
                                 f"{format_size(self.folio_size)}")

    @property
    def trial_seed(self) -> int:
        return (self.seed * 1_000_003 + self.repeat) & ((1 << 63) - 1)

    def identity(self) -> "TrialId":
        """Which trial this is within a run: its configuration and its repeat."""
        # the default workload keeps the keys runs had before workloads existed (resume)
        workload = "" if self.workload == "move-pages" else f"{self.workload}-"
        nodes = f"n{self.src}to{self.dst}" if self.dst is not None else f"n{self.src}"
        head = (f"{workload}{self.migrator}{catalogue.key_parts(self, 'head')}-{format_size(self.folio_size)}"
                f"-{format_size(self.total_size)}-{nodes}-s{self.seed}")
        return TrialId(head, self.repeat, catalogue.key_parts(self, "tail"))

    def key(self) -> str:
        """Stable identity of this trial within a run (used to resume), as text."""
        return str(self.identity())

    def config_key(self) -> str:
        """This trial's configuration: its key without the repeat (what a run gives up
        on when its trials keep killing the target)."""
        return self.identity().config

    @classmethod
    def from_dict(cls, d: dict) -> "TrialSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)


def trials_plan(specs, warmup: bool = True) -> dict:
    return {"op": Op.TRIALS, "trials": [s.to_dict() for s in specs], "warmup": warmup}
