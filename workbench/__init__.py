"""migration workbench: verified move_pages(2) benchmarks for page-migration copy offload."""

__version__ = "0.1.0"
