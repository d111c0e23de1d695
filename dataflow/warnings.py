"""LiberTEM's ``libertem.warnings``: dataflow's warning categories."""

from dataflow.errors import DataflowWarning, UseDiscouragedWarning

__all__ = ["DataflowWarning", "UseDiscouragedWarning"]
