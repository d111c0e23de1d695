"""``StdDevUDF``: per-pixel sum, variance, standard deviation and mean over all frames.

The statistics are accumulated in one pass over the data. Each tile is reduced to its
frame count, sum, and sum of squared deviations from the tile's mean; these moments
are combined with the running state pairwise (Chan et al. 1979, Schubert and Gertz
2018), as are the partial results of partitions in ``merge``. The combination is
associative, so every merge order (chain or tree) gives the same result up to
rounding, and it stays accurate for data with a large mean and a small variance.

Within a tile the moments come from deviations from the tile's first frame (the
"shifted data" method): up to 16 frames at a time are shifted, squared, and summed over
the frames by a BLAS vector-matrix product; the sums are accumulated in float64. The
shift makes the deviations as small as the spread of the data, so their squares lose
nothing to a large mean. By default, data that float32 holds exactly (float32,
float16, integers of up to 16 bits) is shifted and squared in float32, at the
precision of the data: the results agree with a float64 computation to about 1e-6
relative, at twice the speed. ``StdDevUDF(dtype=np.float64)`` computes in float64
throughout.
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
    from dataflow.sources import DataSet
    from dataflow.udf.base import TilingPreferences

__all__ = ["StdDevUDF", "consolidate_result", "run_stddev"]

#: Preferred tile size in bytes of input data: deep tiles, so that the pairwise
#: combination (a dozen passes over one frame's statistics) is paid rarely.
_TILE_BYTES = 16 * 2**20
#: Deviations are computed in chunks of about this many bytes, which stay in cache,
#: and of at most this many frames (the count a float32 chunk sum runs over).
_CHUNK_BYTES = 4 * 2**20
_CHUNK_FRAMES = 16


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
    """Scratch arrays of :meth:`StdDevUDF.process_tile`, made once per partition.

    Allocating them per tile made the C library map and unmap their pages each time
    (they are larger than its mmap threshold): 2.5x slower in one thread.
    """

    #: deviations of a chunk of frames, flattened, in the compute dtype
    deviation: np.ndarray
    #: ones to sum a chunk's frames with, and one chunk's flat sums
    ones: np.ndarray
    chunk_sum: np.ndarray
    #: a tile's sums of deviations and of their squares, flat
    s1: np.ndarray
    s2: np.ndarray
    #: a tile's sum, flat, and room for the pairwise combination
    sum: np.ndarray
    a: np.ndarray
    b: np.ndarray


def _compute_dtype(dtype: np.dtype, base: np.dtype, chosen: bool) -> np.dtype:
    """The dtype deviations are computed in.

    float32 where it holds the data exactly, unless a wider ``base`` was ``chosen``.
    """
    exact_in_float32 = dtype.kind == "f" and dtype.itemsize <= 4
    exact_in_float32 |= dtype.kind in "biu" and dtype.itemsize <= 2
    if exact_in_float32 and (not chosen or base.itemsize <= 4):
        return np.dtype(np.float32)
    return np.result_type(dtype, base)


def _moments(flat: np.ndarray, work: _Work) -> tuple[np.ndarray, np.ndarray]:
    """Sum and sum of squared deviations from the mean of a tile's frames, flat."""
    n = len(flat)
    shift = flat[0]
    s1, s2, chunk_sum = work.s1, work.s2, work.chunk_sum
    s1[...] = 0
    s2[...] = 0
    step = len(work.deviation)
    for a in range(1, n, step):  # the first frame deviates by zero
        k = min(step, n - a)
        deviation = work.deviation[:k]
        np.subtract(flat[a : a + k], shift, out=deviation, dtype=deviation.dtype)
        ones = work.ones[:k]
        s1 += np.matmul(ones, deviation, out=chunk_sum)
        np.multiply(deviation, deviation, out=deviation)
        s2 += np.matmul(ones, deviation, out=chunk_sum)
    # sum = n * shift + s1; varsum = s2 - s1**2 / n (>= 0 up to rounding)
    tile_sum = np.multiply(shift, n, out=work.sum, dtype=work.sum.dtype)
    tile_sum += s1
    np.multiply(s1, s1, out=s1)
    s1 *= 1 / n
    s2 -= s1
    return tile_sum, np.maximum(s2, 0, out=s2)


def _complex_moments(flat: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_moments`, for complex data: deviations from the tile's mean."""
    tile_sum = flat.sum(axis=0, dtype=dtype)
    deviation = flat - tile_sum / len(flat)
    return tile_sum, _abs2(deviation).sum(axis=0)


class StdDevUDF(UDF):
    """Per-pixel variance, standard deviation, mean and sum over the selected frames.

    Parameters
    ----------
    dtype
        Base dtype of the statistics, ``float64`` by default. ``varsum``, ``var`` and
        ``std`` have this dtype; ``sum`` and ``mean`` have
        ``np.result_type(input dtype, dtype)`` (complex for complex data). By default
        float32 and 8- or 16-bit data are shifted and squared in float32 (results
        within about 1e-6 relative of a float64 computation, see the module notes);
        ``dtype=np.float64`` given explicitly computes in float64 throughout.
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
        return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": _TILE_BYTES}

    def process_tile(self, tile: np.ndarray) -> None:
        r = self.results
        flat = tile.reshape(len(tile), -1)
        if np.iscomplexobj(flat) or np.iscomplexobj(r.sum):
            tile_sum, tile_varsum = _complex_moments(flat, r.sum.dtype)
            scratch = None
        else:
            chosen = self.params.dtype is not None
            work = self._work(flat, _compute_dtype(flat.dtype, self._base_dtype(), chosen))
            tile_sum, tile_varsum = _moments(flat, work)
            scratch = (work.a, work.b)
        r.num_frames[:] = _combine(
            int(r.num_frames[0]),
            r.sum.reshape(-1),
            r.varsum.reshape(-1),
            len(flat),
            tile_sum,
            tile_varsum,
            scratch=scratch,
        )

    def _work(self, flat: np.ndarray, dtype: np.dtype) -> _Work:
        work = self.__dict__.get("_df_work")
        pixels = flat.shape[1]
        if work is None or work.deviation.dtype != dtype or work.s1.shape[0] != pixels:
            step = min(_CHUNK_FRAMES, max(1, _CHUNK_BYTES // (pixels * dtype.itemsize)))
            sum_dtype = self.results.sum.dtype
            work = _Work(
                deviation=np.empty((step, pixels), dtype),
                ones=np.ones(step, dtype),
                chunk_sum=np.empty(pixels, dtype),
                s1=np.empty(pixels, np.float64),
                s2=np.empty(pixels, np.float64),
                sum=np.empty(pixels, sum_dtype),
                a=np.empty(pixels, sum_dtype),
                b=np.empty(pixels, sum_dtype),
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
