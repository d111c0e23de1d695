"""LiberTEM import path for the executor base class and its cancellation error."""

from dataflow.executor.base import JobCancelledError, JobExecutor

__all__ = ["JobCancelledError", "JobExecutor"]
