"""Benchmarks: dataflow UDF runs timed side by side with LiberTEM, NumPy, dask and a roofline.

Run with ``python -m benchmarks`` (see ``benchmarks/README.md``).
:mod:`benchmarks.workloads` defines what is measured, :mod:`benchmarks.data` the data
and how each tool opens it, :mod:`benchmarks.runner` how it is timed and reported,
:mod:`benchmarks.peer` and ``peer_libertem.py`` the LiberTEM side in its own
environment, :mod:`benchmarks.memory` the peak-memory workload, and
:mod:`benchmarks.__main__` the command line.
"""
