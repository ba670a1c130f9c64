"""Driving the ``workbench`` command line in a test: its exit code, stdout and stderr, and
the one error line a refusal prints."""

from ..host.cli import main as cli


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr stripped) of ``workbench ARGV``, read through pytest's ``capsys``."""
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err.strip()


def one_line_error(err):
    """The error is one line (progress bars may come before it)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("workbench: error: ")]
    assert len(lines) == 1, err
    return lines[0]
