"""The host side: what a researcher drives (CLI, notebooks, panel) and what it keeps
(runs on disk, statistics, models, reports). It reaches targets through
:mod:`workbench.targets` and speaks to their agents in :mod:`workbench.protocol`.
"""
