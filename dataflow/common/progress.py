"""LiberTEM import path for progress reporting."""

from dataflow.progress import ProgressReporter, ProgressState, TQDMProgressReporter

__all__ = ["ProgressReporter", "ProgressState", "TQDMProgressReporter"]
