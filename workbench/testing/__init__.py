"""Fakes and helpers for the tests, and for notebooks the tests execute on the fake target.

Nothing here measures anything: it stands in for a machine, a kernel or a stored run so
that host-side code can be tested without a VM, an SSH box or a kernel build.

- :mod:`.fake_target`: the registered ``fake`` target (import it to register it; a
  notebook or sweep gets it with ``imports=["workbench.testing.fake_target"]``), with
  canned facts and records and the faults of :mod:`workbench.host.running.chaos`
- :mod:`.fake_agent`: the real agent loop with pretend trials, for tests over a real sshd
  (``python -m workbench.testing.fake_agent run``)
- :mod:`.fake_icount`: a fake target under the instruction-counted clock (the cost benchmark,
  the bisect's commits, a series' cumulative trees); :mod:`.fake_per_patch`: a fake series,
  its builds and a stored per-patch study
- :mod:`.fake_kernels`: sysfs trees (:class:`~workbench.kernelio.kernelfs.FakeFS`) of the
  public RFC series' kernels, with their value rules; :mod:`.fake_series`: our series v2's
- :mod:`.runs`: stored runs with known numbers (the report's, comparison's and notebooks' tests)
- :mod:`.cli`: the ``workbench`` command line driven in a test, and its one-line errors
- :mod:`.vm_plans`: the plans the VM tests send to a booted target, and their shared checks

Not imported by the rest of the package: only tests and test notebooks import it.
"""
