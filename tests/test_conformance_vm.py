"""Integration: `workbench conformance` in a VM of 4 CPUs on series v3 (7.3): the kernel's
migration selftest and stress-ng's NUMA stressor under mtcopy and dcbm, small (one
selftest case each; the full matrix is `workbench conformance --kernel patched`, ~20 min
under TCG). Each case must pass, the migrator must have copied during it, the kernel
log must stay clean."""

import time

import pytest

from workbench.host.studies import conformance
from workbench.host.running import store

from .conftest import V3_KERNEL, VM_PREFIX, _boot

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def four_cpu_v3(tmp_path_factory):
    t0 = time.time()
    target = _boot(V3_KERNEL, f"{VM_PREFIX}-conformance", nodes=[["1G", "0-1"], ["1G", "2-3"]])
    print(f"\n[{V3_KERNEL} with 4 CPUs boot: {time.time() - t0:.0f} s]")
    yield target
    target.vm.down()


def test_the_migration_selftest_and_stress_ng_pass_under_mtcopy_and_dcbm(four_cpu_v3, tmp_path):
    t0 = time.time()
    out, records, cannot = conformance.run(four_cpu_v3, list(conformance.CI_CONFIGS),
                                           conformance.parse_suites(",".join(conformance.CI_SUITES)),
                                           progress=print, root=tmp_path,
                                           only=["migration.private_anon_thp", "numa"])
    df = store.open_run(out.id, tmp_path).records()
    print(f"\n[conformance {time.time() - t0:.0f} s]\n{conformance.matrix(df)}")
    assert cannot == []
    assert sorted(zip(df["case"], df["config"])) == sorted(
        (case, cfg) for case in ("migration.private_anon_thp", "numa") for cfg in conformance.CI_CONFIGS)
    for rec in df.to_dict("records"):
        where = f"{rec['case']} under {rec['config']}"
        assert rec["verdict"] == "pass", (where, rec["verdict"], rec.get("skip_reason"), rec["output"][-2000:])
        assert rec["copied"] > 0 and rec["kernel_clean"], (where, rec["copied"], rec.get("kernel_report"))
        assert rec["offer_everything"] == "reasons=all min_folios=1 min_bytes=0", where


def test_hmm_tests_pass_with_test_hmm_loaded_for_them(four_cpu_v3, tmp_path):
    """The test kernels' device-private memory and test_hmm.ko (60-conformance.config):
    hmm-tests' device-private half passes under the kernel's copy, the module loaded for
    the run and removed after it (a failed removal would be a restore problem)."""
    t0 = time.time()
    out, records, cannot = conformance.run(four_cpu_v3, ["kernel"], [("selftests", "hmm-tests")],
                                           progress=print, root=tmp_path)
    (rec,) = store.open_run(out.id, tmp_path).records().to_dict("records")
    print(f"\n[hmm-tests {time.time() - t0:.0f} s]")
    assert rec["verdict"] == "pass", (rec["verdict"], rec.get("skip_reason"), rec["output"][-3000:])
    assert "# Totals: pass:" in rec["output"] and "fail:0" in rec["output"]
    assert rec["kernel_clean"] and not rec.get("restore_problems"), (rec.get("kernel_report"),
                                                                     rec.get("restore_problems"))
