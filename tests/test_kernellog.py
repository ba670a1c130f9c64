"""The kernel log around a trial (kernel_clean) and the cause of a guest's death, from
text the kernel really prints."""

from workbench.kernelio import kernellog
from workbench.kernelio.kernelfs import FakeFS
from workbench.kernelio.kernellog import TrialLog, death_cause

WARN = """------------[ cut here ]------------
WARNING: CPU: 1 PID: 312 at mm/migrate.c:1290 migrate_folio_move+0x1b0/0x1d0
Modules linked in: dcbm test_dma_engine
CPU: 1 UID: 0 PID: 312 Comm: python Not tainted 6.12.117 #1
RIP: 0010:migrate_folio_move+0x1b0/0x1d0
Call Trace:
 <TASK>
 migrate_pages_batch+0x9a1/0xc40
 </TASK>
---[ end trace 0000000000000000 ]---""".splitlines()

CONSOLE_PANIC = """[   62.718992] virtme-ng-init: starting script
[  228.601102] sysrq: Trigger a crash
[  228.602346] Kernel panic - not syncing: sysrq triggered crash
[  228.603521] CPU: 1 UID: 0 PID: 302 Comm: python Not tainted 6.12.117+deb12-amd64 #1
[  228.605011] Call Trace:
[  228.605530]  <TASK>
[  228.633526] Kernel Offset: 0x2c000000 from 0xffffffff81000000""".splitlines()


def test_a_clean_trial_and_a_warn():
    fs = FakeFS({kernellog.TAINTED: "0"})
    fs.kernel_log.append("old WARNING: before the trial")     # not this trial's
    log = TrialLog(fs)
    fs.kernel_log.append("virtme-ng-init: something harmless")
    assert log.verdict() == {"kernel_clean": True, "kernel_report": None, "kernel_problems": 0}
    log = TrialLog(fs)
    fs.kernel_log.extend(WARN)
    v = log.verdict()
    assert v["kernel_clean"] is False and v["kernel_problems"] == 2     # the WARNING line and Call Trace
    assert v["kernel_report"].splitlines()[0] == WARN[1] and v["kernel_report"].splitlines() == WARN[1:]


def test_a_new_taint_counts_even_if_the_log_was_missed():
    fs = FakeFS({kernellog.TAINTED: str(1 << 12)})                  # O: an out-of-tree module, harmless
    log = TrialLog(fs)
    fs.files[kernellog.TAINTED] = str((1 << 12) | (1 << 9))
    v = log.verdict()
    assert v["kernel_clean"] is False and v["kernel_report"] == "kernel newly tainted: W (warning)"
    log = TrialLog(fs)                                               # already tainted: nothing new
    assert log.verdict()["kernel_clean"] is True


def test_an_unreadable_log_is_unknown_not_clean():
    fs = FakeFS({}, root=False)
    assert TrialLog(fs).verdict() == {"kernel_clean": None, "kernel_report": None, "kernel_problems": None}


def test_death_causes():
    cause, report = death_cause(CONSOLE_PANIC)
    assert cause == "guest kernel panic: sysrq triggered crash"
    assert report.splitlines()[0] == "Kernel panic - not syncing: sysrq triggered crash"
    assert death_cause(["[ 1.0] sysrq: Power Off", "[ 1.2] reboot: Power down"])[0] == "the guest powered off"
    assert death_cause(["[ 1.0] ok"], ["Probing EDD", "qemu-system-x86_64: terminating on signal 15 from pid 7 (kill)"]
                       )[0] == "QEMU exited: qemu-system-x86_64: terminating on signal 15 from pid 7 (kill)"
    assert death_cause(["[ 1.0] ok"], ["Probing EDD (edd=off to disable)... ok"])[0].startswith(
        "QEMU exited with no panic or power-off")
