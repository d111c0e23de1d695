"""LiberTEM's analysis API: ready-made analyses over the built-in UDFs.

Build an analysis with ``ctx.create_*_analysis(...)`` and run it with ``ctx.run``;
the result is an :class:`~dataflow.analysis.base.AnalysisResultSet` of 2D results
with titles and pictures. See ``docs/analyses.md`` for the keys each one returns.

Examples
--------
>>> res = ctx.run(ctx.create_disk_analysis(dataset=dataset, r=5))
>>> [r.title for r in res]
['intensity [lin]', 'intensity [log]']
"""

from dataflow.analysis.base import Analysis, AnalysisResult, AnalysisResultSet
from dataflow.analysis.com import COMAnalysis
from dataflow.analysis.disk import DiskMaskAnalysis
from dataflow.analysis.masks import MasksAnalysis
from dataflow.analysis.point import PointMaskAnalysis
from dataflow.analysis.radialfourier import RadialFourierAnalysis
from dataflow.analysis.raw import PickFrameAnalysis
from dataflow.analysis.ring import RingMaskAnalysis
from dataflow.analysis.sum import SumAnalysis

__all__ = [
    "Analysis",
    "AnalysisResult",
    "AnalysisResultSet",
    "COMAnalysis",
    "DiskMaskAnalysis",
    "MasksAnalysis",
    "PickFrameAnalysis",
    "PointMaskAnalysis",
    "RadialFourierAnalysis",
    "RingMaskAnalysis",
    "SumAnalysis",
]
