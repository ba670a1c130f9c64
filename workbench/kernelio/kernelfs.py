"""The single layer for sysfs and procfs text I/O, and for loading kernel modules, able to
record and replay.

Every kernel knob the workbench reads or writes, every module it loads or removes
(``modprobe``/``rmmod``: loading a migrator makes its sysfs files appear), every
procfs text it reads (``/proc/cpuinfo``) and the kernel log it watches or writes
(``/dev/kmsg``) goes through a :class:`KernelFS`:

* :class:`RealFS` talks to the running kernel;
* :class:`RecordingFS` wraps another and keeps a log of every operation;
* :class:`FakeFS` is an in-memory tree, usually loaded from a snapshot recorded on a
  real kernel (:func:`snapshot`), that enforces the same value rules the kernel does
  (choice files like ``[always] madvise never``, integers with bounds, custom rules),
  so kernel control can be tested without a kernel.

:class:`KnobGuard` sets knobs and puts every one back afterwards, in reverse order,
even when the run in between fails.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Callable

from ..errors import WorkbenchError


class KnobRejected(WorkbenchError):
    """The kernel refused a value (EINVAL and friends)."""


class KnobPermission(WorkbenchError):
    """Not allowed to write a knob (not root, or a read-only file)."""


class ModuleError(WorkbenchError):
    """A module could not be loaded or removed (missing, in use, not root)."""


def parse_choices(text: str) -> tuple[list[str], str | None]:
    """'always [madvise] never' -> (['always', 'madvise', 'never'], 'madvise')."""
    choices, selected = [], None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            word = word[1:-1]
            selected = word
        choices.append(word)
    return choices, selected


class KernelFS:
    """Interface: text files under /sys and /proc."""

    def read(self, path: str) -> str:
        raise NotImplementedError

    def write(self, path: str, value: str) -> None:
        raise NotImplementedError

    def reader(self, path: str) -> "Reader":
        """A file to read again and again cheaply (a monitor's samples): call it for the
        file's text now, close it when done. Here, each call is a :meth:`read`."""
        return Reader(lambda: self.read(path))

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError

    def isdir(self, path: str) -> bool:
        raise NotImplementedError

    def mkdir(self, path: str) -> None:
        """Make a directory the kernel backs with an object (a cgroup, a tracing instance)."""
        raise NotImplementedError

    def rmdir(self, path: str) -> None:
        """Remove such a directory (the kernel refuses while it is in use: EBUSY)."""
        raise NotImplementedError

    def module_loadable(self, name: str) -> bool:
        """Whether ``modprobe NAME`` would find the module (``modprobe -n``)."""
        raise NotImplementedError

    def load_module(self, name: str, params: tuple[str, ...] = ()) -> None:
        """``modprobe NAME [PARAM=VALUE ...]``; raises :class:`ModuleError` with the reason."""
        raise NotImplementedError

    def module_params(self, name: str) -> tuple[str, ...] | None:
        """The parameter names of a loadable module, without loading it (``modinfo -F
        parm``); None when there is no such module. What tells one posted series' module
        from another of the same name before it is loaded."""
        raise NotImplementedError

    def unload_module(self, name: str) -> None:
        """``rmmod NAME``; raises :class:`ModuleError` (in use, not loaded, ...)."""
        raise NotImplementedError

    def log_cursor(self):
        """A position at the end of the kernel log, for :meth:`log_since`; None when the
        log cannot be read here (not root)."""
        raise NotImplementedError

    def log_since(self, cursor) -> list[str] | None:
        """The kernel log's lines since ``cursor`` (which moves on); None if unreadable."""
        raise NotImplementedError

    def log_write(self, lines: list[str]) -> None:
        """Write lines into the kernel log (``/dev/kmsg``, level warning)."""
        raise NotImplementedError

    # helpers shared by every implementation
    def read_choice(self, path: str) -> str | None:
        return parse_choices(self.read(path))[1]

    def read_int(self, path: str) -> int:
        return int(self.read(path).split()[0])


def _translate(exc: OSError, path: str, value: str | None, verb: str | None = None) -> WorkbenchError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = verb or f"write {value!r} to"
        return KnobPermission(f"no permission to {what} {path}: run as root (or use --target vm)")
    if exc.errno == errno.ENOENT:
        return WorkbenchError(f"{path} does not exist on this kernel")
    if verb:
        return KnobRejected(f"the kernel refused to {verb} {path} ({os.strerror(exc.errno or 0)})")
    return KnobRejected(f"the kernel rejected {value!r} for {path} ({os.strerror(exc.errno or 0)})")


#: the environment variable naming a directory of modules built out of tree for the
#: running kernel (the test DMA engine: kernel/engine-module.sh); a module modprobe does
#: not know is loaded from there with insmod, after the modules it depends on
MODULE_DIR_ENV = "WORKBENCH_MODULE_DIR"


def out_of_tree_module(name: str) -> str | None:
    """The .ko file for module ``name`` in $WORKBENCH_MODULE_DIR, if there is one."""
    directory = os.environ.get(MODULE_DIR_ENV)
    if not directory:
        return None
    for stem in dict.fromkeys((name, name.replace("_", "-"))):
        path = os.path.join(directory, f"{stem}.ko")
        if os.path.isfile(path):
            return path
    return None


def _module_depends(path: str) -> list[str]:
    try:
        out = subprocess.run(["modinfo", "-F", "depends", path], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [d for d in out.strip().split(",") if d]


class Reader:
    """What :meth:`KernelFS.reader` returns: ``reader()`` is the file's text now."""

    def __init__(self, read: Callable[[], str], close: Callable[[], None] | None = None):
        self._read, self._close = read, close

    def __call__(self) -> str:
        return self._read()

    def close(self) -> None:
        if self._close:
            self._close()


class RealFS(KernelFS):
    def read(self, path):
        with open(path) as f:
            return f.read().strip()

    def reader(self, path):
        """The file kept open and read from its start each time: no open, close or path
        walk per sample (procfs regenerates the text on each read from offset 0)."""
        fd = os.open(path, os.O_RDONLY)

        def read():
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace").strip()
        return Reader(read, lambda: os.close(fd))

    def write(self, path, value):
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as exc:
            raise _translate(exc, path, str(value)) from None

    def exists(self, path):
        return os.path.exists(path)

    def listdir(self, path):
        return sorted(os.listdir(path))

    def isdir(self, path):
        # sysfs is full of symlink loops (node1/subsystem/devices/node1/...): never follow
        return os.path.isdir(path) and not os.path.islink(path)

    def mkdir(self, path):
        try:
            os.mkdir(path)
        except OSError as exc:
            raise _translate(exc, path, None, "make directory") from None

    def rmdir(self, path):
        try:
            os.rmdir(path)
        except OSError as exc:
            raise _translate(exc, path, None, "remove directory") from None

    def module_loadable(self, name):
        return self.module_loadable_in_tree(name) or out_of_tree_module(name) is not None

    def load_module(self, name, params=()):
        extra = out_of_tree_module(name)
        if extra and not self.module_loadable_in_tree(name):
            if os.path.isdir(f"/sys/module/{name}"):
                return                                  # loaded already, as modprobe would say
            for dep in _module_depends(extra):
                self._module_command(["modprobe", dep], "load")
            self._module_command(["insmod", extra, *params], "load")
            return
        self._module_command(["modprobe", name, *params], "load")

    def module_params(self, name):
        try:
            res = subprocess.run(["modinfo", "-F", "parm", out_of_tree_module(name) or name],
                                 capture_output=True, text=True)
        except OSError:
            return None
        if res.returncode != 0:
            return None
        return tuple(ln.split(":", 1)[0].strip() for ln in res.stdout.splitlines() if ":" in ln)

    @staticmethod
    def module_loadable_in_tree(name) -> bool:
        try:
            return subprocess.run(["modprobe", "-n", name], capture_output=True).returncode == 0
        except OSError:
            return False

    def unload_module(self, name):
        self._module_command(["rmmod", name], "remove")

    def log_cursor(self):
        try:
            return _KmsgCursor()
        except OSError:
            return None

    def log_since(self, cursor):
        return None if cursor is None else cursor.read()

    def log_write(self, lines):
        with open("/dev/kmsg", "w") as f:
            for line in lines:
                f.write(f"<4>{line}\n")
                f.flush()

    @staticmethod
    def _module_command(argv: list[str], verb: str):
        try:
            res = subprocess.run(argv, capture_output=True, text=True)
        except OSError as exc:
            raise ModuleError(f"cannot {verb} module {argv[1]!r}: {exc}") from None
        if res.returncode != 0:
            why = (res.stderr.strip().splitlines() or [f"{argv[0]} exited {res.returncode}"])[-1]
            raise ModuleError(f"cannot {verb} module {argv[1]!r}: {why}")


class _KmsgCursor:
    """An open ``/dev/kmsg`` positioned at the end of the log: each read returns the
    records logged since (one record per ``read``, ``prio,seq,usec,flags;text``)."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self) -> list[str]:
        lines = []
        while True:
            try:
                record = os.read(self.fd, 16384)
            except BlockingIOError:
                return lines
            except BrokenPipeError:  # the ring overwrote records before they were read
                lines.append("(kernel log: records were overwritten before they could be read)")
                continue
            if not record:
                return lines
            text = record.decode(errors="replace").split("\n", 1)[0]
            lines.append(text.partition(";")[2])

    def __del__(self):
        try:
            os.close(self.fd)
        except (OSError, AttributeError):
            pass


class RecordingFS(KernelFS):
    """Passes through to ``inner`` and logs (op, path, value, outcome)."""

    def __init__(self, inner: KernelFS):
        self.inner = inner
        self.log: list[dict] = []

    def _do(self, op, path, value, fn):
        try:
            result = fn()
        except Exception as exc:
            self.log.append({"op": op, "path": path, "value": value, "error": str(exc)})
            raise
        self.log.append({"op": op, "path": path, "value": value,
                         "result": result if op == "read" else None})
        return result

    def read(self, path):
        return self._do("read", path, None, lambda: self.inner.read(path))

    def write(self, path, value):
        return self._do("write", path, str(value), lambda: self.inner.write(path, value))

    def exists(self, path):
        return self.inner.exists(path)

    def listdir(self, path):
        return self.inner.listdir(path)

    def isdir(self, path):
        return self.inner.isdir(path)

    def mkdir(self, path):
        return self._do("mkdir", path, None, lambda: self.inner.mkdir(path))

    def rmdir(self, path):
        return self._do("rmdir", path, None, lambda: self.inner.rmdir(path))

    def module_loadable(self, name):
        return self.inner.module_loadable(name)

    def module_params(self, name):
        return self.inner.module_params(name)

    def load_module(self, name, params=()):
        return self._do("modprobe", name, " ".join(params) or None, lambda: self.inner.load_module(name, params))

    def unload_module(self, name):
        return self._do("rmmod", name, None, lambda: self.inner.unload_module(name))

    def log_cursor(self):
        return self.inner.log_cursor()

    def log_since(self, cursor):
        return self.inner.log_since(cursor)

    def log_write(self, lines):
        return self._do("log_write", "/dev/kmsg", "\n".join(lines), lambda: self.inner.log_write(lines))

    def writes(self) -> list[tuple[str, str]]:
        return [(e["path"], e["value"]) for e in self.log if e["op"] == "write" and "error" not in e]


Rule = Callable[[str, str], str]
"""A write rule: (current content, written value) -> new content, or raise OSError."""


def choice_rule(current: str, value: str) -> str:
    choices, _ = parse_choices(current)
    value = value.strip()
    if value not in choices:
        raise OSError(errno.EINVAL, "invalid choice")
    return " ".join(f"[{c}]" if c == value else c for c in choices)


def int_rule(lo: int | None = None, hi: int | None = None) -> Rule:
    def rule(current: str, value: str) -> str:
        try:
            n = int(value.strip(), 0)
        except ValueError:
            raise OSError(errno.EINVAL, "not a number") from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise OSError(errno.EINVAL, "out of range")
        return str(n)
    return rule


def bool_rule(current: str, value: str) -> str:
    """kstrtobool: 1/0, y/n, on/off (first letters suffice)."""
    v = value.strip().lower()
    if v in ("1", "y", "yes", "on", "true"):
        return "1"
    if v in ("0", "n", "no", "off", "false"):
        return "0"
    raise OSError(errno.EINVAL, "not a boolean")


def reset_rule(current: str, value: str) -> str:
    """Counters that reset when 0 is written and refuse anything else."""
    if value.strip() != "0":
        raise OSError(errno.EINVAL, "only 0 resets a counter")
    return "0"


class FakeFS(KernelFS):
    """An in-memory /sys and /proc with the kernel's value rules.

    ``files`` maps absolute paths to contents. Rules are looked up by exact path first,
    then by regular expression (``add_rule(pattern, rule, regex=True)``); a file with no
    rule whose content looks like a choice list gets :func:`choice_rule`, an integer
    gets :func:`int_rule`; ``readonly`` paths refuse every write with EACCES, as do
    all files when ``root=False``.
    """

    def __init__(self, files: dict[str, str] | None = None, root: bool = True):
        #: modules modprobe can find: name -> (the files loading it adds, loaded?)
        self.modules: dict[str, dict] = {}
        #: modules rmmod refuses (in use)
        self.busy: set[str] = set()
        self.files: dict[str, str] = {}
        self.rules: dict[str, Rule] = {}
        self.regex_rules: list[tuple[re.Pattern, Rule]] = []
        self.readonly: set[str] = set()
        self.root = root
        #: the kernel log, one line per entry (tests append what the kernel would print)
        self.kernel_log: list[str] = []
        #: directories made with mkdir (kernel objects: cgroups, tracing instances)
        self.dirs: set[str] = set()
        #: {regex: fn(fs, path)}: what the kernel puts in a directory made there
        self.mkdir_hooks: list[tuple[re.Pattern, Callable]] = []
        for path, content in (files or {}).items():
            self.add(path, content)

    @classmethod
    def from_snapshot(cls, source: str | Path | dict, root: bool = True, modules_loaded: bool = True) -> "FakeFS":
        """A snapshot's files; the modules it recorded (``workbench sysfs snapshot --load``)
        are loadable, with the parameters modinfo gave, and loaded unless
        ``modules_loaded`` is False (their files then appear when one is loaded)."""
        data = json.loads(Path(source).read_text()) if not isinstance(source, dict) else source
        fs = cls(data["files"], root=root)
        fs.readonly.update(data.get("readonly", []))
        for name, info in data.get("modules", {}).items():
            prefix = f"/sys/module/{name}/"
            files = {p: fs.files.pop(p) for p in [p for p in fs.files if p.startswith(prefix)]}
            fs.add_module(name, files, loaded=modules_loaded, params=info.get("params"))
        return fs

    def add(self, path: str, content: str = "", rule: Rule | None = None, readonly: bool = False):
        self.files[path] = str(content)
        if rule is not None:
            self.rules[path] = rule
        if readonly:
            self.readonly.add(path)

    def add_rule(self, path_or_pattern: str, rule: Rule, regex: bool = False):
        if regex:
            self.regex_rules.append((re.compile(path_or_pattern), rule))
        else:
            self.rules[path_or_pattern] = rule

    def _rule_for(self, path: str) -> Rule | None:
        if path in self.rules:
            return self.rules[path]
        for pattern, rule in self.regex_rules:
            if pattern.fullmatch(path):
                return rule
        content = self.files[path]
        if "[" in content and "]" in content:
            return choice_rule
        if re.fullmatch(r"-?\d+", content.strip()):
            return int_rule()
        return None

    def read(self, path):
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "No such file", path)
        return self.files[path].strip()

    def write(self, path, value):
        value = str(value)
        try:
            if path not in self.files:
                raise OSError(errno.ENOENT, "No such file")
            if not self.root or path in self.readonly:
                raise OSError(errno.EACCES, "Permission denied")
            if value == "":
                return      # RealFS writes nothing then: no write(2) reaches the kernel's store
            rule = self._rule_for(path)
            self.files[path] = rule(self.files[path], value) if rule else value.strip()
        except OSError as exc:
            raise _translate(exc, path, value) from None

    def exists(self, path):
        return path in self.files or self.isdir(path)

    def isdir(self, path):
        prefix = path.rstrip("/") + "/"
        return path.rstrip("/") in self.dirs or any(p.startswith(prefix) for p in self.files)

    def add_mkdir_hook(self, pattern: str, fn: Callable) -> None:
        """``fn(fs, path)`` fills a directory made under ``pattern`` (a regex), as the kernel would."""
        self.mkdir_hooks.append((re.compile(pattern), fn))

    def mkdir(self, path):
        path = path.rstrip("/")
        try:
            if self.exists(path):
                raise OSError(errno.EEXIST, "File exists")
            if not self.root:
                raise OSError(errno.EACCES, "Permission denied")
        except OSError as exc:
            raise _translate(exc, path, None, "make directory") from None
        self.dirs.add(path)
        for pattern, fn in self.mkdir_hooks:
            if pattern.fullmatch(path):
                fn(self, path)

    def rmdir(self, path):
        path = path.rstrip("/")
        try:
            if path not in self.dirs:
                raise OSError(errno.ENOENT, "No such directory")
        except OSError as exc:
            raise _translate(exc, path, None, "remove directory") from None
        self.dirs.discard(path)
        for p in [p for p in self.files if p.startswith(path + "/")]:
            del self.files[p]
        self.dirs = {d for d in self.dirs if not d.startswith(path + "/")}

    def add_module(self, name: str, files: dict[str, str] | None = None, loaded: bool = False,
                   params: list[str] | None = None):
        """A module modprobe can find; loading it adds ``files`` (removing it takes them away);
        ``params``: what modinfo lists (default: the parameters among ``files``)."""
        self.modules[name] = {"files": dict(files or {}), "loaded": False,
                              "modinfo_params": tuple(params) if params is not None else None}
        if loaded:
            self.load_module(name)

    def module_loadable(self, name):
        return name in self.modules

    def module_params(self, name):
        if name not in self.modules:
            return None
        if self.modules[name]["modinfo_params"] is not None:
            return self.modules[name]["modinfo_params"]
        prefix = f"/sys/module/{name}/parameters/"
        return tuple(sorted(p[len(prefix):] for p in self.modules[name]["files"] if p.startswith(prefix)))

    def load_module(self, name, params=()):
        if name not in self.modules:
            raise ModuleError(f"cannot load module {name!r}: modprobe: FATAL: Module {name} not found")
        if not self.root:
            raise ModuleError(f"cannot load module {name!r}: Operation not permitted")
        mod = self.modules[name]
        if not mod["loaded"]:
            mod["loaded"], mod["params"] = True, tuple(params)
            for path, content in mod["files"].items():
                self.files.setdefault(path, content)

    def unload_module(self, name):
        mod = self.modules.get(name)
        if not mod or not mod["loaded"]:
            raise ModuleError(f"cannot remove module {name!r}: ERROR: Module {name} is not currently loaded")
        if name in self.busy:
            raise ModuleError(f"cannot remove module {name!r}: ERROR: Module {name} is in use")
        mod["loaded"] = False
        for path in mod["files"]:
            self.files.pop(path, None)

    def log_cursor(self):
        return [len(self.kernel_log)] if self.root else None

    def log_since(self, cursor):
        if cursor is None:
            return None
        lines = self.kernel_log[cursor[0]:]
        cursor[0] = len(self.kernel_log)
        return lines

    def log_write(self, lines):
        self.kernel_log.extend(lines)

    def listdir(self, path):
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/", 1)[0] for p in list(self.files) + list(self.dirs) if p.startswith(prefix)}
        if not names and path not in self.files and path.rstrip("/") not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "No such directory", path)
        return sorted(names)


def snapshot(fs: KernelFS, roots: list[str], max_files: int = 5000) -> dict:
    """Record the readable text files under ``roots`` into a dict FakeFS can load."""
    files: dict[str, str] = {}
    stack = list(roots)
    while stack and len(files) < max_files:
        path = stack.pop()
        if fs.isdir(path):
            try:
                stack.extend(f"{path.rstrip('/')}/{name}" for name in fs.listdir(path))
            except OSError:
                pass
            continue
        try:
            files[path] = fs.read(path)
        except (OSError, UnicodeDecodeError):
            continue
    return {"roots": roots, "files": dict(sorted(files.items()))}


class KnobGuard:
    """Set knobs for the duration of a block and restore each original value after it.

    >>> with KnobGuard(fs) as g:
    ...     g.set("/sys/kernel/mm/transparent_hugepage/enabled", "never")
    """

    def __init__(self, fs: KernelFS):
        self.fs = fs
        self.saved: list[tuple[str, str]] = []
        #: undo actions other than a knob's old value (remove a cgroup, ...), by position in saved
        self._undo: dict[int, Callable[[], None]] = {}

    def _original(self, path: str) -> str:
        current = self.fs.read(path)
        choices, selected = parse_choices(current)
        original = selected if selected is not None else current
        marked = [w[1:-1] for w in current.split() if w.startswith("[") and w.endswith("]")]
        if len(marked) > 1:
            # a file that selects several at once (the series' `reasons`: every enabled one in
            # brackets) takes them back as a comma-separated list, not the last one alone
            original = ",".join(marked)
        return original

    def set(self, path: str, value: str):
        original = self._original(path)
        self.fs.write(path, value)
        self.saved.append((path, original))

    def keep(self, path: str):
        """Restore ``path`` afterwards without writing it now: for a knob that another one
        changes as a side effect (a preset that sets several fields)."""
        self.saved.append((path, self._original(path)))

    def defer(self, undo: Callable[[], None], what: str) -> None:
        """Run ``undo`` when restoring, in order with the knobs (last set, first undone):
        for changes that are not a value to write back (a directory made, ...)."""
        self._undo[len(self.saved)] = undo
        self.saved.append((what, None))

    def restore(self) -> list[str]:
        """Put everything back; returns the problems met (restoring goes on past them)."""
        problems = []
        while self.saved:
            path, value = self.saved.pop()
            undo = self._undo.pop(len(self.saved), None)
            try:
                if undo is not None:
                    undo()
                else:
                    self.fs.write(path, value)
            except WorkbenchError as exc:
                problems.append(str(exc))
        return problems

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.restore()
        return False
