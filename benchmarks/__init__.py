"""Benchmarks: dataflow UDF runs timed against NumPy; run with ``python -m benchmarks``.

:mod:`benchmarks.workloads` defines what is measured, :mod:`benchmarks.runner` how,
and :mod:`benchmarks.__main__` the command line. See ``benchmarks/README.md``.
"""
