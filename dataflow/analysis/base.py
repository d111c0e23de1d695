"""Results and base classes of the analysis API (LiberTEM's ``libertem.analysis.base``).

An *analysis* is a thin layer over a UDF: it picks the UDF and its parameters from a
few geometric arguments (centre, radii, coordinates), and turns the UDF's buffers into
an :class:`AnalysisResultSet` of 2D :class:`AnalysisResult` images, each with a title,
a description and a colour-mapped picture. ``Context.create_*_analysis`` builds them,
``Context.run`` runs them (see :func:`run_analysis`).

Pictures (``AnalysisResult.visualized``) are drawn with matplotlib when first asked
for, never before.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from dataflow.errors import ResultNotFoundError
from dataflow.roi import normalize_roi

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from dataflow.api import Context
    from dataflow.sources import DataSet
    from dataflow.udf.base import UDF

__all__ = [
    "Analysis",
    "AnalysisResult",
    "AnalysisResultSet",
    "BaseAnalysis",
    "intensity_results",
    "run_analysis",
]


class AnalysisResult:
    """One 2D result of an analysis: the numbers, a picture of them, and labels.

    Parameters
    ----------
    raw_data
        The numbers, usually in the navigation shape (frame shape for sum and pick).
    visualized
        An RGB(A) image of ``raw_data``, or a function without arguments that draws
        it; the function runs on the first access of :attr:`visualized`.
    title, desc
        Short title and description, for display.
    key
        The name of the result in its :class:`AnalysisResultSet`.
    include_in_download
        Whether a GUI should offer the result for download.

    Examples
    --------
    >>> r = AnalysisResult(np.eye(2), visualized=lambda: "drawn", title="t", desc="d", key="k")
    >>> r.visualized, np.asarray(r).shape
    ('drawn', (2, 2))
    """

    def __init__(
        self,
        raw_data: Any,
        visualized: Any,
        title: str,
        desc: str,
        key: str,
        include_in_download: bool = True,
    ) -> None:
        self.raw_data = raw_data
        self._visualized = visualized
        self.title = title
        self.desc = desc
        self.key = key
        self.include_in_download = include_in_download

    @property
    def visualized(self) -> Any:
        """The picture: an RGB(A) array, drawn on first access."""
        if callable(self._visualized):
            self._visualized = self._visualized()
        return self._visualized

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.array(self.raw_data, dtype=dtype)

    def get_image(self, save_kwargs: dict[str, Any] | None = None) -> Any:
        """The picture encoded as an image file (PNG by default), in a ``BytesIO``."""
        from dataflow.viz.images import encode_image

        return encode_image(self.visualized, save_kwargs=save_kwargs)

    def __repr__(self) -> str:
        return f"<AnalysisResult: {self.key}>"

    def __str__(self) -> str:
        return "".join(
            f"{name}: {getattr(self, name)}\n"
            for name in ("title", "desc", "key", "raw_data", "visualized")
        )


class AnalysisResultSet:
    """The results of one analysis run, addressable four ways.

    By key as an attribute (``res.mask_0``), by key as an item (``res["mask_0"]``), by
    position (``res[0]``), and by iteration (``for r in res``). ``keys()`` lists the
    keys in order; ``raw_results`` holds the underlying numbers where an analysis
    provides them (the complex Fourier coefficients of the radial Fourier analysis).

    Parameters
    ----------
    results
        The results, or a function without arguments that returns them; it runs on
        first access.
    raw_results
        Anything the analysis wants to attach.

    Raises
    ------
    ResultNotFoundError
        For a key that is not in the set (an ``AttributeError`` and a ``KeyError``).

    Examples
    --------
    >>> shape = tuple(dataset.shape.sig)
    >>> analysis = ctx.create_mask_analysis(
    ...     factories=[lambda: np.ones(shape), lambda: np.eye(*shape)], dataset=dataset
    ... )
    >>> res = ctx.run(analysis)
    >>> res.keys()
    ['mask_0', 'mask_1']
    >>> res.mask_1.title, res[0].key, res["mask_1"].desc, len(res)
    ('mask 1', 'mask_0', 'integrated intensity for mask 1', 2)
    >>> res.mask_7
    Traceback (most recent call last):
    ...
    dataflow.errors.ResultNotFoundError: no result with key 'mask_7'; available keys: mask_0, mask_1
    """

    def __init__(
        self,
        results: Sequence[AnalysisResult] | Callable[[], Sequence[AnalysisResult]],
        raw_results: Any = None,
    ) -> None:
        self._results = results
        self.raw_results = raw_results

    @property
    def results(self) -> list[AnalysisResult]:
        """The results in order (computed on first access if given as a function)."""
        if callable(self._results):
            self._results = self._results()
        return list(self._results)

    def keys(self) -> list[str]:
        """The keys of the results, in order."""
        return [r.key for r in self.results]

    def _find(self, key: str) -> AnalysisResult:
        for r in self.results:
            if r.key == key:
                return r
        raise ResultNotFoundError(
            f"no result with key {key!r}; available keys: {', '.join(self.keys())}"
        )

    def __getattr__(self, key: str) -> AnalysisResult:
        if key.startswith("_"):  # internals (and copy/pickle probes) are never results
            raise AttributeError(key)
        return self._find(key)

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            return self._find(key)
        return self.results[key]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[AnalysisResult]:
        return iter(self.results)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {', '.join(self.keys())}>"


class Analysis:
    """Base class of analyses: a UDF plus the conversion of its results.

    Subclasses implement :meth:`get_udf` and :meth:`get_udf_results`, and may override
    :meth:`get_roi` (frames to process when ``Context.run`` gets no ``roi``) and
    :meth:`get_parameters` (defaults, completed by the given parameters).

    Parameters
    ----------
    dataset
        The dataset to analyse.
    parameters
        The analysis' parameters by name; missing ones take their defaults.
    """

    TYPE: ClassVar[str] = "UDF"

    def __init__(self, dataset: DataSet, parameters: dict[str, Any]) -> None:
        if not isinstance(parameters, dict):
            raise TypeError(
                f"parameters is a {type(parameters).__name__}; expected a dict of parameter "
                "names to values"
            )
        self.dataset = dataset
        self.parameters = {**self.get_parameters(parameters), **parameters}

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Default parameters; the given ``parameters`` are applied on top of them."""
        return {}

    def get_udf(self) -> UDF:
        """The UDF to run."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_udf()")

    def get_roi(self) -> np.ndarray | None:
        """The frames to process when ``Context.run`` gets no ``roi``: None for all."""
        return None

    def get_udf_results(
        self, udf_results: Any, roi: np.ndarray | None, damage: Any
    ) -> AnalysisResultSet:
        """The result set from the UDF's results.

        Parameters
        ----------
        udf_results
            The mapping ``Context.run_udf`` returned.
        roi
            The boolean navigation mask the UDF ran with, or None.
        damage
            True, or the boolean navigation mask of the positions that hold results.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement get_udf_results()")

    def need_rerun(self, old_params: dict[str, Any], new_params: dict[str, Any]) -> bool:
        """Whether a change of parameters needs a new pass over the data."""
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.parameters!r}>"


class BaseAnalysis(Analysis):
    """An :class:`Analysis` with the result helpers the built-in analyses share."""

    def get_complex_results(
        self,
        data: np.ndarray,
        key_prefix: str,
        title: str,
        desc: str,
        damage: Any,
        default_lin: bool = True,
    ) -> list[AnalysisResult]:
        """Magnitude, log-scaled magnitude, real and imaginary part, angle, the values.

        With ``default_lin`` the magnitude has the key ``key_prefix`` and the log view
        ``<key_prefix>_log``; otherwise the log view has ``key_prefix`` and the magnitude
        ``<key_prefix>_lin``.
        """
        magn = np.abs(data)
        parts = [
            (magn, key_prefix if default_lin else f"{key_prefix}_lin", "magn", {}),
            (magn, f"{key_prefix}_log" if default_lin else key_prefix, "log(magn)", _LOG),
            (data.real, f"{key_prefix}_real", "real", {}),
            (data.imag, f"{key_prefix}_imag", "imag", {}),
            (np.angle(data), f"{key_prefix}_angle", "angle", {}),
        ]
        results = [
            AnalysisResult(
                raw_data=values,
                visualized=partial(visualize, values, damage=damage, **kwargs),
                key=key,
                title=f"{title} [{label}]",
                desc=f"{desc} [{label}]",
            )
            for values, key, label, kwargs in parts
        ]
        results.append(
            AnalysisResult(
                raw_data=data,
                visualized=partial(_complex_wheel, data, damage),
                key=f"{key_prefix}_complex",
                title=f"{title} [complex]",
                desc=f"{desc} [complex]",
            )
        )
        return results


_LOG = {"logarithmic": True}


# pictures ---------------------------------------------------------------------------------


def visualize(values: Any, damage: Any = True, **kwargs: Any) -> np.ndarray:
    """An RGBA picture of a 2D array (:func:`dataflow.viz.images.visualize_simple`)."""
    from dataflow.viz.images import visualize_simple

    return visualize_simple(values, damage=_valid(values, damage), **kwargs)


def intensity_results(
    data: np.ndarray, desc: str, damage: Any = True, default_lin: bool = True
) -> list[AnalysisResult]:
    """A real 2D ``intensity`` as LiberTEM shows it: a linear and a log-scaled picture.

    With ``default_lin`` the key ``intensity`` is the linear picture and
    ``intensity_log`` the other (the mask analyses); otherwise ``intensity`` is the
    log-scaled one and ``intensity_lin`` the linear one (sum and pick).
    """
    lin = AnalysisResult(
        raw_data=data,
        visualized=partial(visualize, data, damage=damage),
        key="intensity" if default_lin else "intensity_lin",
        title="intensity [lin]",
        desc=f"{desc} lin-scaled",
    )
    log = AnalysisResult(
        raw_data=data,
        visualized=partial(visualize, data, damage=damage, logarithmic=True),
        key="intensity_log" if default_lin else "intensity",
        title="intensity [log]",
        desc=f"{desc} log-scaled",
    )
    return [lin, log] if default_lin else [log, lin]


def _valid(values: Any, damage: Any) -> np.ndarray:
    """``damage`` as a boolean array the shape of ``values``, False where not finite."""
    values = np.asarray(values)
    return np.broadcast_to(np.asarray(damage, dtype=bool), values.shape) & np.isfinite(values)


def vector_rgb(x: np.ndarray, y: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """An RGB picture of a 2D vector field: the hue is the direction, the brightness the length.

    Parameters
    ----------
    x, y
        Components of the vectors, equal shapes.
    vmax
        The length drawn at full brightness; by default the longest finite vector.

    Returns
    -------
    numpy.ndarray
        ``uint8``, shape ``x.shape + (3,)``; black where a component is not finite.

    Examples
    --------
    >>> rgb = vector_rgb(np.array([[1.0, 0.0]]), np.array([[0.0, 0.5]]))
    >>> rgb.shape, rgb.dtype, rgb[0, 0].max(), rgb[0, 1].max()
    ((1, 2, 3), dtype('uint8'), np.uint8(255), np.uint8(128))
    """
    from matplotlib.colors import hsv_to_rgb

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    length = np.hypot(x, y)
    finite = np.isfinite(length)
    if vmax is None:
        vmax = float(length[finite].max()) if finite.any() else 1.0
    scale = vmax if vmax and np.isfinite(vmax) else 1.0
    hsv = np.zeros((*x.shape, 3))
    hsv[..., 0] = np.where(finite, np.arctan2(y, x) / (2 * np.pi) % 1.0, 0)
    hsv[..., 1] = 1.0
    hsv[..., 2] = np.where(finite, np.clip(length / scale, 0, 1), 0)
    return np.round(hsv_to_rgb(hsv) * 255).astype(np.uint8)


def _complex_wheel(data: np.ndarray, damage: Any) -> np.ndarray:
    valid = _valid(data, damage)
    magn = np.abs(data)
    vmax = float(magn[valid].max()) if valid.any() else 1.0
    return vector_rgb(data.real, data.imag, vmax=vmax)


# running ----------------------------------------------------------------------------------


def given(**parameters: Any) -> dict[str, Any]:
    """The parameters that are not None (what ``Context.create_*_analysis`` passes on)."""
    return {name: value for name, value in parameters.items() if value is not None}


def run_analysis(
    ctx: Context,
    analysis: Analysis,
    roi: Any = None,
    progress: Any = False,
    corrections: Any = None,
) -> AnalysisResultSet:
    """Run ``analysis`` with ``ctx``: what ``Context.run`` does.

    A ``roi`` given here replaces the analysis' own (``get_roi()``), as in LiberTEM,
    also for the pick analysis. Navigation-shaped results are NaN outside the ROI.

    Raises
    ------
    TypeError
        If ``analysis`` is not an :class:`Analysis`.
    dataflow.errors.RoiError
        If ``roi`` does not fit the dataset's navigation shape.
    """
    if not isinstance(analysis, Analysis):
        raise TypeError(
            f"job is a {type(analysis).__name__}; expected an Analysis, e.g. from "
            "ctx.create_disk_analysis(dataset=...); run UDFs with ctx.run_udf"
        )
    nav_shape = tuple(analysis.dataset.shape.nav)
    roi = analysis.get_roi() if roi is None else roi
    roi = normalize_roi(roi, nav_shape)
    udf_results = ctx.run_udf(
        dataset=analysis.dataset,
        udf=analysis.get_udf(),
        roi=roi,
        corrections=corrections,
        progress=progress,
    )
    damage: Any = True if roi is None else roi
    return analysis.get_udf_results(udf_results, roi, damage=damage)
