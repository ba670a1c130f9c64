"""A fake series for ``bench cost --per-patch`` (:mod:`workbench.host.studies.per_patch`) and
notebook 08: patch files whose text is never applied, a stand-in for kernel/build.sh that
names each cumulative tree and remembers its seed, and a stored study measured on
:class:`~workbench.testing.fake_icount.SeriesIcountFake` (patch 2 costs 2%, patch 3
brings the batching knob, whose batched copy costs 5%)."""

import textwrap
from pathlib import Path

from .fake_icount import SeriesIcountFake

SUBJECTS = ["mm/migrate: copy a batch ahead", "mm/migrate: count every batch (costs 2%)",
            "mm/migrate: a knob to batch the kernel's copy", "Documentation/mm: describe it"]


def make_series(root, with_file=True, name="v9") -> Path:
    """A format-patch directory ``root/name`` of four patches, with a series file or not."""
    d = Path(root) / name
    d.mkdir(parents=True)
    names = []
    for i, subject in enumerate(SUBJECTS, 1):
        file = f"{i:04d}-{subject.split(':')[0].replace('/', '-')}.patch"
        cut = subject.index(" ", 20)             # the subject folded at a space, as git does
        (d / file).write_text(textwrap.dedent(f"""\
            From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
            From: A Researcher <a@example.org>
            Subject: [PATCH {i}/{len(SUBJECTS)}] {subject[:cut]}
             {subject[cut + 1:]}

            ---
            """))
        names.append(file)
    if with_file:
        (d / "series").write_text("# the fake series\n" + "\n".join(names) + "\n")
    return d


class FakeBuilds:
    """A stand-in for the cumulative builds: tree k is ``<series>-pNN-bench`` (the base:
    ``vanilla-bench``) under ``root``; ``calls`` has (k, seed) of each build."""

    def __init__(self, root):
        self.calls, self.root = [], Path(root) / "trees"

    def __call__(self, patches, k, name, base, line, seed_from):
        self.calls.append((k, seed_from))
        return (f"{name}-p{k:02d}-bench" if k else "vanilla-bench"), self.root / f"p{k:02d}"


def stored_study(root, runs, folio_sizes=(4096, 2 << 20), boots=2):
    """Measure the fake series into the runs directory ``runs``; returns its records."""
    from ..host.studies import per_patch
    series = make_series(root)
    return per_patch.measure(series, folio_sizes=list(folio_sizes), size=4 << 20, repeats=3, boots=boots, root=runs,
                             progress=False, build=FakeBuilds(root), target_factory=SeriesIcountFake)
