"""Lab boxes over SSH from the command line (issue 14): ``workbench target prepare``,
``workbench kernel package``, ``workbench kernel install`` and ``workbench lab``.

The work is :mod:`workbench.targets.lab`, :mod:`workbench.targets.kernel_package` and
:mod:`workbench.vm.lab_vm`'s; here are the flags, one-line errors for bad input
before a box is reached, and the short summaries. Wired into
:func:`workbench.host.cli.build_parser` with ``add_parsers(sub)`` (``target``, ``lab``)
and ``add_kernel_parsers(kernel_sub)`` (``kernel package``, ``kernel install``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ...errors import WorkbenchError

SSH_SPEC = "ssh://[user@]host[:port]"


def _progress(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def _ssh_options(p: argparse.ArgumentParser) -> None:
    """The box's ssh key and known_hosts (spelled as on ``run`` too)."""
    p.add_argument("--identity", "--ssh-identity", dest="identity", metavar="FILE", help="ssh private key file")
    p.add_argument("--known-hosts", "--ssh-known-hosts", dest="known_hosts", metavar="FILE",
                   help="known_hosts file to check the box's host key against (never added to)")


def ssh_target(spec: str, args, what: str, port: int | None = None):
    """The SSH target ``spec`` names with the command's --identity/--known-hosts; any
    other kind of target is a one-line error naming ``what`` needed it."""
    from ...targets import make_target, parse_spec
    kind, rest = parse_spec(spec or "")
    if kind != "ssh":
        raise WorkbenchError(f"{what} works on a box over SSH ({SSH_SPEC}), not target {spec!r}")
    if port is not None:
        if not 0 < port < 65536:
            raise WorkbenchError(f"--port {port} is not a TCP port (1-65535)")
        if ":" in rest.rsplit("@", 1)[-1]:
            if not spec.endswith(f":{port}"):
                raise WorkbenchError(f"{spec} and --port {port} name two ports; give one")
        else:
            spec = f"{spec}:{port}"
    return make_target(spec, identity=args.identity, known_hosts=args.known_hosts)


# ---- workbench target prepare -----------------------------------------------------------------

def prepare_summary(facts: dict) -> list[str]:
    """What ``lab.prepare`` found and did, a few lines."""
    nodes = ", ".join(map(str, facts.get("numa_nodes_with_memory") or [])) or "none"
    priv = facts.get("privilege")
    done = (f"installed the agent into {facts.get('remote_dir')}/venv" if facts.get("installed")
            else "already prepared, nothing to install")
    return [f"{facts['target']}: {done} ({facts.get('seconds', 0):.0f} s)",
            f"  python         {facts.get('python')} {facts.get('python_version') or ''}".rstrip(),
            f"  NUMA nodes     {nodes} with memory",
            f"  THP            {facts.get('thp')}",
            f"  privilege      {priv} (login {facts.get('user')})" if priv != "root" else "  privilege      root",
            f"  kernel         {facts.get('kernel_release')}",
            f"  remote python  {facts.get('remote_python')} (the agent's python on {facts['target']} from now on)"]


def cmd_target(args) -> int:
    from ...targets import lab
    target = ssh_target(args.spec, args, "target prepare", port=args.port)
    facts = lab.prepare(target, progress=_progress)
    print("\n".join(prepare_summary(facts)))
    return 0


# ---- workbench kernel package / install --------------------------------------------------------

def cmd_kernel_package(args) -> int:
    from ...targets import kernel_package
    kernel_package.check_config_source(args.config, args.config_from)
    if args.lsmod and args.no_localmodconfig:
        raise WorkbenchError("--lsmod is for localmodconfig; it does not go with --no-localmodconfig")
    source = ssh_target(args.config_from, args, "--config-from") if args.config_from else None
    how = dict(config=args.config, config_from=source, localmodconfig=not args.no_localmodconfig,
               lsmod=args.lsmod, vanilla=args.vanilla, test_dma_engine=args.test_dma_engine, ksrc=args.ksrc,
               line=args.line)
    pkg = kernel_package.cached(**how)
    from_cache = pkg is not None
    if not from_cache:
        _progress("building the kernel package (1-2 h on 2 cores with localmodconfig; the result is cached)")
        pkg = kernel_package.build(**how, progress=_progress)
    print(f"kernel package ({pkg.flavour}): {pkg.deb}")
    print(f"  release  {pkg.release} (uname -r once booted), version {pkg.version}")
    print("  from the cache" if from_cache else f"  built in {pkg.info.get('wall_seconds', 0):.0f} s")
    return 0


def cmd_kernel_install(args) -> int:
    from ...targets import lab
    from ...targets.kernel_package import KernelPackage
    pkg = KernelPackage.from_deb(args.package)        # a missing or wrong file: before the box is reached
    if args.timeout <= 0:
        raise WorkbenchError(f"--timeout {args.timeout:g} must be a positive number of seconds")
    target = ssh_target(args.target, args, "kernel install")
    r = lab.install(pkg.deb, target, boot=args.boot, timeout=args.timeout, progress=_progress)
    print(f"{r['target']} runs {r['running_release']} ({r['running_version']}) after {r['boot']}; "
          f"took {r['seconds']:.0f} s (copy {r['seconds_copy']:.0f} s, dpkg -i {r['seconds_install']:.0f} s, "
          f"{r['boot']} and back {r['seconds_boot']:.0f} s)")
    print(f"  series migrator: {r['series_migrator']}" if r.get("series_migrator")
          else "  no /sys/kernel/mm/migration/migrator: not a kernel of the series")
    if r.get("default_entry"):
        print(f"  GRUB's default entry stays {r['previous_release']}: the next power cycle boots it")
    return 0


# ---- workbench lab ------------------------------------------------------------------------------

def lab_lines(info: dict) -> list[str]:
    """How to use the lab VM as a target."""
    opts = f"--ssh-identity {info['identity']} --ssh-known-hosts {info['known_hosts']}"
    return [f"  target   {info['target']} {opts}",
            f"  console  {info['console']}"]


def cmd_lab(args) -> int:
    from ...vm.lab_vm import LabVM
    vm = LabVM(args.name, accel=args.accel or "auto")
    if args.action == "up":
        was_up = vm.running()
        info = vm.up(progress=_progress)
        st = vm.state() or {}
        how = "was already up" if was_up else f"booted in {st.get('boot_seconds', 0):.0f} s"
        print(f"lab VM {args.name!r} up on 127.0.0.1:{info['port']} ({st.get('accel')}), {how}")
        print("\n".join(lab_lines(info)))
    elif args.action == "status":
        status = vm.status()
        if args.json:
            print(json.dumps(status, indent=1))
        elif status["running"]:
            print(f"lab VM {args.name!r} running: pid {status['pid']}, 127.0.0.1:{status['port']}, "
                  f"{status['accel']}, up {time.time() - status['started']:.0f} s")
            print("\n".join(lab_lines(status)))
        else:
            print(f"lab VM {args.name!r} is down")
    elif args.action == "down":
        print(f"lab VM {args.name!r} " + ("stopped" if vm.down() else "was not running"))
    else:
        vm.reset()
        print(f"lab VM {args.name!r} stopped and its disk dropped: the next `workbench lab up` is a clean box")
    return 0


# ---- the parsers --------------------------------------------------------------------------------

def add_parsers(sub) -> None:
    """Add ``target`` and ``lab`` to the ``workbench`` subparsers."""
    t = sub.add_parser("target", help="prepare a box over SSH to run the agent",
                       description="prepare: check the box (python3 >= 3.10 with venv, two NUMA nodes with memory, "
                                   "THP, root or passwordless sudo), build a wheelhouse here, copy it over the SSH "
                                   "connection and install this package into ~/.migration-workbench/venv on the "
                                   "box; later ssh:// targets of that box run the agent from that venv.")
    t.add_argument("action", choices=["prepare"])
    t.add_argument("spec", metavar="TARGET", help=SSH_SPEC)
    t.add_argument("--port", type=int, help="ssh port (or give it in the address)")
    _ssh_options(t)
    t.set_defaults(fn=cmd_target)

    lab = sub.add_parser("lab", help="the lab-machine VM: a Debian box with its own disk, reached only over SSH",
                         description="up: boot it (building its disk image first, which needs root and mmdebstrap) "
                                     "and print the ssh:// target with the --ssh-identity and --ssh-known-hosts to "
                                     "pass; status; down (ACPI power-off); reset (stop it and drop its disk: a "
                                     "clean box next time).")
    lab.add_argument("action", choices=["up", "status", "down", "reset"])
    lab.add_argument("--name", default="lab", help="which lab VM (its state lives in the cache; default %(default)s)")
    lab.add_argument("--accel", choices=["auto", "kvm", "tcg"], help="up: accelerator (default auto)")
    lab.add_argument("--json", action="store_true", help="status: as JSON")
    lab.set_defaults(fn=cmd_lab)


def add_kernel_parsers(ksub) -> None:
    """Add ``package`` and ``install`` to the ``workbench kernel`` subcommands."""
    p = ksub.add_parser("package", help="the series (or vanilla) as a linux-image .deb for a box",
                        description="Build the kernel as a Debian package (make bindeb-pkg) on a box's own config: "
                                    "fetched from the box (--config-from) or a file (--config). Cached by its "
                                    "inputs: the same inputs return the same .deb at once.")
    p.add_argument("--config-from", metavar="ssh://HOST", help="take the base config (and lsmod) from this box")
    p.add_argument("--config", metavar="FILE", help="the base config file (a box's /boot/config-$(uname -r))")
    p.add_argument("--vanilla", action="store_true", help="the same source without the series")
    p.add_argument("--no-localmodconfig", action="store_true",
                   help="build every module the config has, not only those the box has loaded (hours more)")
    p.add_argument("--lsmod", metavar="FILE", help="the box's lsmod output for localmodconfig (default: "
                                                   "fetched with --config-from; none with --config)")
    p.add_argument("--test-dma-engine", action="store_true",
                   help="also build the test-only DMA engine (for the lab VM, which has no DMA engine; never for "
                        "a real machine)")
    p.add_argument("--line", help="the kernel line (kernel/lines) whose Debian source to build: 7.3 (default) "
                                  "or 6.12 (the frozen LTS line)")
    p.add_argument("--ksrc", help="a kernel tree to use instead of a line's Debian source")
    _ssh_options(p)
    p.set_defaults(fn=cmd_kernel_package)

    i = ksub.add_parser("install", help="install a linux-image .deb on a box and boot it once",
                        description="Copy the package, dpkg -i, keep GRUB's default on the kernel the box runs now, "
                                    "boot the new kernel once (kexec, or a one-shot grub-reboot entry) and check it "
                                    "is what runs. A kernel that does not come up is left at the next power cycle.")
    i.add_argument("package", metavar="PACKAGE.deb")
    i.add_argument("--target", required=True, help=SSH_SPEC)
    i.add_argument("--boot", choices=["kexec", "reboot"], default="kexec",
                   help="kexec: no firmware, fastest; reboot: through GRUB and the firmware (default %(default)s)")
    i.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                   help="how long to wait for the box to come back (default %(default)g)")
    _ssh_options(i)
    i.set_defaults(fn=cmd_kernel_install)
