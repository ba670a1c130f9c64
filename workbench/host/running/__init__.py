"""Running trials and keeping them: a run's parameters and checks (:mod:`.plan`), the
runner with its policy and fault handling (:mod:`.runner`), the store of one atomic file
per trial and the schema every record fits (:mod:`.store`, :mod:`.record_schema`),
sweeps over grids of knobs (:mod:`.sweep`, on Dask: :mod:`.distributed`), executing
notebooks (:mod:`.notebooks`, :mod:`.papermill_process`) and the chaos hooks that break
runs on purpose (:mod:`.chaos`)."""
