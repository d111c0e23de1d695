"""``StdDevUDF``: per-pixel sum, variance, standard deviation and mean over all frames.

The statistics are accumulated in one pass over the data. Each tile is reduced to its
frame count, sum, and sum of squared deviations from the tile's own mean; these
moments are combined with the running state pairwise (Chan et al. 1979, Schubert and
Gertz 2018), as are the partial results of partitions in ``merge``. The combination
is associative, so every merge order (chain or tree) gives the same result up to
rounding, and it stays accurate for data with a large mean and a small variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from collections.abc import Mapping

    from dataflow.api import Context
    from dataflow.buffers import BufferWrapper, UDFData
    from dataflow.dataset import DataSet
    from dataflow.udf.base import TilingPreferences

__all__ = ["StdDevUDF", "consolidate_result", "run_stddev"]

#: Preferred tile size in bytes of input data.
_TILE_BYTES = 2**20


def _abs2(x: np.ndarray) -> np.ndarray:
    """``|x|**2`` as a real array (in place for real ``x``)."""
    if np.iscomplexobj(x):
        return x.real**2 + x.imag**2
    return np.square(x, out=x)


def _combine(
    n_dest: int,
    dest_sum: np.ndarray,
    dest_varsum: np.ndarray,
    n_src: int,
    src_sum: np.ndarray,
    src_varsum: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray] | None = None,
) -> int:
    """Combine the moments ``(n_src, src_sum, src_varsum)`` into ``dest_*`` in place.

    ``varsum`` is the sum of squared deviations from the mean. For two disjoint sets
    of ``n_dest`` and ``n_src`` samples with means differing by ``delta``, the joint
    value is ``varsum_dest + varsum_src + n_dest * n_src / n * |delta|**2``.

    ``scratch`` is two arrays like ``dest_sum`` to work in (new ones if None).

    Returns
    -------
    int
        The joint number of samples.
    """
    if n_src == 0:
        return n_dest
    if n_dest == 0:
        dest_sum[...] = src_sum
        dest_varsum[...] = src_varsum
        return n_src
    n = n_dest + n_src
    a, b = scratch if scratch is not None else (np.empty_like(dest_sum), np.empty_like(dest_sum))
    delta = np.multiply(src_sum, 1 / n_src, out=a)
    delta -= np.multiply(dest_sum, 1 / n_dest, out=b)
    squared = _abs2(delta)
    squared *= n_dest * n_src / n
    dest_varsum += src_varsum
    dest_varsum += squared
    dest_sum += src_sum
    return n


@dataclass
class _Work:
    """Scratch arrays of :meth:`StdDevUDF.process_tile`."""

    sum: np.ndarray
    mean: np.ndarray
    delta: np.ndarray
    varsum: np.ndarray
    deviation: np.ndarray


class StdDevUDF(UDF):
    """Per-pixel variance, standard deviation, mean and sum over the selected frames.

    Parameters
    ----------
    dtype
        Base dtype of the statistics, ``float64`` by default. ``varsum``, ``var`` and
        ``std`` have this dtype; ``sum`` and ``mean`` have
        ``np.result_type(input dtype, dtype)`` (complex for complex data).
    use_numba
        Accepted for compatibility with LiberTEM; the NumPy implementation is used
        either way.

    Notes
    -----
    Result buffers: ``varsum`` (sum of squared deviations from the mean), ``num_frames``
    (a ``single`` buffer with the number of frames), ``sum``, and the ``result_only``
    buffers ``var`` (``varsum / num_frames``, the population variance), ``std`` and
    ``mean``. With no selected frames (an all-false ROI) ``var``, ``std`` and ``mean``
    are NaN.

    Examples
    --------
    >>> res = ctx.run_udf(dataset=dataset, udf=StdDevUDF())
    >>> int(res["num_frames"].data[0])
    256
    >>> np.allclose(res["var"].data, data.var(axis=(0, 1), dtype=np.float64))
    True
    >>> res["std"].data.shape, res["std"].dtype, res["mean"].dtype
    ((32, 32), dtype('float64'), dtype('float64'))
    """

    def __init__(self, dtype: Any = None, use_numba: bool = True) -> None:
        super().__init__(dtype=dtype, use_numba=use_numba)

    def _base_dtype(self) -> np.dtype:
        base = self.params.dtype
        return np.dtype(np.float64 if base is None else base)

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        base = self._base_dtype()
        dtype = np.result_type(self.meta.input_dtype, base)
        return {
            "varsum": self.buffer(kind="sig", dtype=base, where="device"),
            "num_frames": self.buffer(kind="single", dtype="int64"),
            "sum": self.buffer(kind="sig", dtype=dtype, where="device"),
            "var": self.buffer(kind="sig", dtype=base, use="result_only"),
            "std": self.buffer(kind="sig", dtype=base, use="result_only"),
            "mean": self.buffer(kind="sig", dtype=dtype, use="result_only"),
        }

    def get_tiling_preferences(self) -> TilingPreferences:
        # the deviations from the tile mean are a temporary array of the tile's size
        # in float64: tiles of about 1 MiB keep it in cache (about 1.5x faster than
        # the default tiles, measured on 128 x 128 float32 frames)
        return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": _TILE_BYTES}

    def process_tile(self, tile: np.ndarray) -> None:
        n_tile = tile.shape[0]
        dtype = np.result_type(tile.dtype, self._base_dtype())
        work = self._work(tile.shape, dtype)
        tile_sum = np.add.reduce(tile, axis=0, dtype=dtype, out=work.sum)
        mean = np.multiply(tile_sum, 1 / n_tile, out=work.mean)
        deviation = np.subtract(tile, mean, out=work.deviation[:n_tile])
        squared = _abs2(deviation)
        tile_varsum = np.add.reduce(squared, axis=0, out=work.varsum)
        r = self.results
        r.num_frames[:] = _combine(
            int(r.num_frames[0]),
            r.sum,
            r.varsum,
            n_tile,
            tile_sum,
            tile_varsum,
            scratch=(work.mean, work.delta),
        )

    def _work(self, shape: tuple[int, ...], dtype: np.dtype) -> _Work:
        """Arrays to compute a tile's moments in, made once per partition.

        Allocating them per tile made the C library map and unmap their pages each
        time (they are larger than its mmap threshold): 2.5x slower in one thread.
        """
        work = self.__dict__.get("_df_work")
        if work is None or work.deviation.shape[0] < shape[0] or work.mean.dtype != dtype:
            work = _Work(
                sum=np.empty(shape[1:], dtype),
                mean=np.empty(shape[1:], dtype),
                delta=np.empty(shape[1:], dtype),
                varsum=np.empty(shape[1:], np.empty(0, dtype).real.dtype),
                deviation=np.empty(shape, dtype),
            )
            self.__dict__["_df_work"] = work
        return work

    def merge(self, dest: UDFData, src: UDFData) -> None:
        dest.num_frames[:] = _combine(
            int(dest.num_frames[0]),
            dest.sum,
            dest.varsum,
            int(src.num_frames[0]),
            src.sum,
            src.varsum,
        )

    def get_results(self) -> dict[str, np.ndarray]:
        r = self.results
        n = int(r.num_frames[0])
        with np.errstate(divide="ignore", invalid="ignore"):  # n == 0: NaN, quietly
            var = (r.varsum / n).astype(r.varsum.dtype, copy=False)
            mean = (r.sum / n).astype(r.sum.dtype, copy=False)
        return {"var": var, "std": np.sqrt(var), "mean": mean}


def consolidate_result(udf_result: Mapping[str, Any]) -> dict[str, Any]:
    """The results of a :class:`StdDevUDF` run as plain arrays and a frame count.

    Parameters
    ----------
    udf_result
        What ``ctx.run_udf(..., udf=StdDevUDF())`` returned.

    Returns
    -------
    dict
        ``num_frames`` (an integer) and the arrays ``varsum``, ``sum``, ``var``,
        ``std`` and ``mean``.

    Examples
    --------
    >>> stats = consolidate_result(ctx.run_udf(dataset=dataset, udf=StdDevUDF()))
    >>> sorted(stats), int(stats["num_frames"])
    (['mean', 'num_frames', 'std', 'sum', 'var', 'varsum'], 256)
    """
    return {
        "num_frames": udf_result["num_frames"].data[0],
        "varsum": udf_result["varsum"].data,
        "sum": udf_result["sum"].data,
        "var": udf_result["var"].data,
        "std": udf_result["std"].data,
        "mean": udf_result["mean"].data,
    }


def run_stddev(
    ctx: Context,
    dataset: DataSet,
    roi: Any = None,
    progress: bool = False,
    use_numba: bool = True,
) -> dict[str, Any]:
    """Run :class:`StdDevUDF` on ``dataset`` and return :func:`consolidate_result`'s dict.

    Parameters
    ----------
    ctx
        The context to run on.
    dataset
        The data.
    roi
        Boolean mask of the navigation shape: only selected frames are used.
    progress
        Show a progress bar.
    use_numba
        Accepted for compatibility with LiberTEM.

    Returns
    -------
    dict
        ``num_frames``, ``varsum``, ``sum``, ``var``, ``std`` and ``mean``.

    Examples
    --------
    >>> stats = run_stddev(ctx, dataset, roi=dataset.roi[:4])
    >>> int(stats["num_frames"]), bool(np.allclose(stats["std"], data[:4].std(axis=(0, 1))))
    (64, True)
    """
    udf = StdDevUDF(use_numba=use_numba)
    return consolidate_result(ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress))
