"""Executors: LiberTEM's executor names mapped onto dask schedulers."""

from dataflow.executor.base import JobExecutor

__all__ = ["JobExecutor"]
