"""Why a VM died, from what QEMU itself said, and where the panic's text came from.

The rules, in order; the first that holds names the cause (``named_by`` says which
signal that was, and a fault's record keeps it):

1. QEMU announced ``GUEST_PANICKED`` (the guest's pvpanic device): a kernel panic.
2. QEMU was killed by a signal (its wait status, written down by its parent
   :mod:`.qemu_watch`): "killed", and only then.
3. QEMU announced ``SHUTDOWN``: its reason (the guest powered off or reset, a signal
   QEMU caught and stopped on, a QMP ``quit``).
4. QEMU exited with a status but said nothing: that status and QEMU's last message.
5. QEMU's own record is missing (its watcher was killed with it, or a VM booted before
   the watcher existed): the console's word, as before, marked as a guess.

A panic's text (its ``Kernel panic - not syncing`` line and the report before it) is
looked for in the guest's console, then in the serial copy of the log that vng leaves
in QEMU's stderr, then in the panic record ramoops kept (:mod:`.pstore`); ``text_from``
says which had it. The console is read only after QEMU has been reaped, so its file is
closed and complete. A kernel without the pvpanic driver still panics visibly: a
reset whose console shows a panic is a panic named by the console.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernelio import kernellog

PANIC_LINE = "Kernel panic - not syncing"

#: QEMU's SHUTDOWN reasons (qapi/run-state.json, ShutdownCause) in words
SHUTDOWN_REASONS = {
    "guest-shutdown": "the guest powered off",
    "guest-reset": "the guest rebooted (QEMU runs with -no-reboot, so it stopped)",
    "guest-panic": "the guest panicked (QEMU's panic action stopped it)",
    "host-signal": "QEMU stopped on a signal it caught",
    "host-qmp-quit": "QEMU was told to quit over QMP",
    "host-qmp-system-reset": "QEMU was told to reset over QMP",
    "host-error": "QEMU stopped on an error of its own",
    "host-ui": "QEMU's window was closed",
}


@dataclass
class Death:
    cause: str                  # one line
    named_by: str               # which signal named it (see the module's rules)
    text_from: str | None       # where a panic's text came from: console, serial, pstore
    report: str | None          # the first lines of the kernel's report, if any text had one
    exit: dict | None           # QEMU's ending as its watcher wrote it down

    def fields(self) -> dict:
        """What a fault's record keeps of it."""
        return {"named_by": self.named_by, "text_from": self.text_from, "qemu_exit": self.exit}


def _panic_text(sources: list[tuple[str, list[str]]]) -> tuple[str | None, str | None, str | None]:
    """The panic line, the report's first lines and the source that had them."""
    for name, lines in sources:
        lines = [kernellog.strip_stamp(ln) for ln in lines]
        panic = next((ln for ln in reversed(lines) if PANIC_LINE in ln), None)
        if panic:
            return panic, kernellog.first_report(lines), name
    return None, None, None


def _panic_cause(panic: str | None) -> str:
    if panic is None:
        return "guest kernel panic (its message is in neither the console nor the pstore record)"
    return f"guest kernel panic: {panic.split(PANIC_LINE + ':', 1)[-1].strip() or panic}"


def explain(events: list[dict], exit: dict | None, console: list[str], serial: list[str] = (),
            pstore: str = "", qemu_said: list[str] = ()) -> Death:
    """The cause of a VM's death. ``events``: QEMU's QMP events of this boot; ``exit``:
    QEMU's ending (:func:`.qemu_watch.read_exit`); ``console``: the guest console's lines
    of this boot; ``serial``: the kernel lines in QEMU's stderr; ``pstore``: the panic
    record's text; ``qemu_said``: QEMU's own messages (its stderr without the kernel's)."""
    sources = [("console", list(console)), ("serial", list(serial)), ("pstore", pstore.splitlines())]
    panic, report, text_from = _panic_text(sources)
    names = [e.get("event") for e in events]
    shutdown = next((e for e in reversed(events) if e.get("event") == "SHUTDOWN"), None)
    reason = (shutdown or {}).get("data", {}).get("reason")
    said = [ln.strip() for ln in qemu_said if ln.strip()]

    if "GUEST_PANICKED" in names:
        return Death(_panic_cause(panic), "pvpanic (QMP GUEST_PANICKED)", text_from, report, exit)
    if exit and exit.get("signal"):
        return Death(f"QEMU was killed by {exit.get('signal_name') or 'signal ' + str(exit['signal'])}",
                     "QEMU's exit status", None, report, exit)
    if shutdown is not None:
        named = f"QMP SHUTDOWN ({reason})"
        if reason == "guest-reset" and panic:          # a kernel without the pvpanic driver
            return Death(_panic_cause(panic), f"{named} and the {text_from}", text_from, report, exit)
        words = SHUTDOWN_REASONS.get(reason, f"QEMU shut down ({reason})")
        if reason == "host-signal":
            signalled = next((ln for ln in reversed(said) if "terminating on signal" in ln), None)
            words += f": {signalled}" if signalled else ""
        return Death(words, named, text_from if panic else None, report, exit)
    if exit is not None:
        words = f"QEMU exited with status {exit.get('code')}" + (f": {said[-1]}" if said else " and said nothing")
        if panic:
            return Death(_panic_cause(panic), f"QEMU's exit status and the {text_from}", text_from, report, exit)
        return Death(words, "QEMU's exit status", None, report, exit)
    cause, report = kernellog.death_cause(console, said)
    return Death(cause, "the console (QEMU's own record is missing)", "console" if panic else None, report, None)
