"""Mask analyses: integrate every frame over masks (LiberTEM's ``libertem.analysis.masks``).

:class:`MasksAnalysis` runs :class:`~dataflow.udf.masks.ApplyMasksUDF` with the user's
mask factories and returns one result per mask, ``mask_0``, ``mask_1``, ...
:class:`SingleMaskAnalysis` is the base of the disk, ring and point analyses, which
return ``intensity`` and ``intensity_log``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from dataflow.analysis.base import (
    AnalysisResult,
    AnalysisResultSet,
    BaseAnalysis,
    intensity_results,
    visualize,
)
from dataflow.udf.masks import ApplyMasksUDF

if TYPE_CHECKING:
    import numpy as np

    from dataflow.sources import DataSet

__all__ = [
    "BaseMasksAnalysis",
    "MasksAnalysis",
    "MasksResultSet",
    "SingleMaskAnalysis",
    "SingleMaskResultSet",
]


class MasksResultSet(AnalysisResultSet):
    """What a :class:`MasksAnalysis` returns.

    Keys ``mask_0``, ``mask_1``, ...: the integral of every frame over each mask, in
    the navigation shape. For complex data or masks ``mask_<i>`` is the magnitude,
    followed by ``mask_<i>_log``, ``_real``, ``_imag``, ``_angle`` and ``_complex``.
    """


class SingleMaskResultSet(AnalysisResultSet):
    """What the disk, ring and point analyses return.

    Keys ``intensity`` (linear picture) and ``intensity_log`` (logarithmic picture),
    both the integral of every frame over the mask, in the navigation shape. For
    complex data ``intensity`` is the magnitude, followed by ``intensity_log``,
    ``_real``, ``_imag``, ``_angle`` and ``_complex``.
    """


class BaseMasksAnalysis(BaseAnalysis):
    """An analysis that runs :class:`~dataflow.udf.masks.ApplyMasksUDF`.

    Subclasses implement :meth:`get_mask_factories`; the parameters ``use_sparse``,
    ``mask_count``, ``mask_dtype`` and ``dtype`` (the UDF's ``preferred_dtype``) are
    passed on to the UDF.
    """

    def get_mask_factories(self) -> Any:
        """The ``mask_factories`` of the UDF."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_mask_factories()")

    def get_use_sparse(self) -> Any:
        """The UDF's ``use_sparse``."""
        return self.parameters.get("use_sparse")

    def get_udf(self) -> ApplyMasksUDF:
        p = self.parameters
        return ApplyMasksUDF(
            mask_factories=self.get_mask_factories(),
            use_sparse=self.get_use_sparse(),
            mask_count=p.get("mask_count"),
            mask_dtype=p.get("mask_dtype"),
            preferred_dtype=p.get("dtype"),
        )

    def _sig_yx(self) -> tuple[int, int]:
        sig = tuple(self.dataset.shape.sig)
        if len(sig) != 2:
            raise ValueError(
                f"the dataset's signal shape is {sig}; {type(self).__name__} needs 2D frames"
            )
        return sig[0], sig[1]


class SingleMaskAnalysis(BaseMasksAnalysis):
    """One mask; results ``intensity`` and ``intensity_log``. Subclasses describe the mask."""

    def get_description(self) -> str:
        """What the integral measures, for the results' ``desc``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_description()")

    def get_udf_results(
        self, udf_results: Any, roi: np.ndarray | None, damage: Any
    ) -> SingleMaskResultSet:
        data = udf_results["intensity"].data[..., 0]
        desc = self.get_description()
        if data.dtype.kind == "c":
            return SingleMaskResultSet(
                self.get_complex_results(
                    data, key_prefix="intensity", title="intensity", desc=desc, damage=damage
                )
            )
        return SingleMaskResultSet(intensity_results(data, desc, damage=damage))


class MasksAnalysis(BaseMasksAnalysis):
    """Integrate every frame over each of the user's masks.

    Parameters
    ----------
    dataset
        The dataset.
    parameters
        ``factories`` (required): as ``mask_factories`` of
        :class:`~dataflow.udf.masks.ApplyMasksUDF`; optional ``use_sparse``,
        ``mask_count``, ``mask_dtype``, ``dtype``.

    Raises
    ------
    ValueError
        If ``factories`` is missing.
    TypeError
        If ``factories`` is neither a function nor a list of functions.

    Examples
    --------
    >>> shape = tuple(dataset.shape.sig)
    >>> analysis = ctx.create_mask_analysis(factories=[lambda: np.ones(shape)], dataset=dataset)
    >>> res = ctx.run(analysis)
    >>> res.keys(), res.mask_0.raw_data.shape
    (['mask_0'], (16, 16))
    >>> bool(np.allclose(res.mask_0.raw_data, data.sum(axis=(2, 3)), rtol=1e-5))
    True
    """

    def __init__(self, dataset: DataSet, parameters: dict[str, Any]) -> None:
        super().__init__(dataset, parameters)
        if "factories" not in self.parameters:
            raise ValueError(
                "parameters has no 'factories'; expected a mask factory or a list of them"
            )
        self.get_udf()  # checks factories, use_sparse and mask_count now, not at run time

    def get_mask_factories(self) -> Any:
        return self.parameters["factories"]

    def get_udf_results(
        self, udf_results: Any, roi: np.ndarray | None, damage: Any
    ) -> MasksResultSet:
        data = udf_results["intensity"].data
        results = []
        for i in range(data.shape[-1]):
            values = data[..., i]
            title, desc = f"mask {i}", f"integrated intensity for mask {i}"
            if data.dtype.kind == "c":
                results.extend(
                    self.get_complex_results(
                        values, key_prefix=f"mask_{i}", title=title, desc=desc, damage=damage
                    )
                )
            else:
                results.append(
                    AnalysisResult(
                        raw_data=values,
                        visualized=partial(visualize, values, damage=damage),
                        key=f"mask_{i}",
                        title=title,
                        desc=desc,
                    )
                )
        return MasksResultSet(results)
