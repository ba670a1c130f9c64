"""Reading stored runs: statistics and the series' table (:mod:`.stats`), clocks and
what a result may claim (:mod:`.clocks`), comparisons (:mod:`.compare`,
:mod:`.compare_all`), reports and views (:mod:`.report`, :mod:`.workload_view`,
:mod:`.monitor_view`, :mod:`.conformance_view`, :mod:`.dcbm_counts`), the models and
published figures (:mod:`.amdahl`, :mod:`.amdahl_inputs`, :mod:`.reference`) and the
explore panel (:mod:`.panel`)."""
