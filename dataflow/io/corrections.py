"""LiberTEM import path for :class:`~dataflow.corrections.CorrectionSet`."""

from dataflow.corrections import CorrectionSet, RepairValueError

__all__ = ["CorrectionSet", "RepairValueError"]
