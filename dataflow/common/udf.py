"""LiberTEM import path for the UDF interface's enums and tiling preferences."""

from dataflow.udf.base import TileDepthEnum, TileSizeEnum, TilingPreferences, UDFMethod

__all__ = ["TileDepthEnum", "TileSizeEnum", "TilingPreferences", "UDFMethod"]
