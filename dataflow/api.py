"""The ``Context``: load datasets and run UDFs on them with an executor."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, Self

from dataflow.errors import DataflowWarning, ExecutorSpecException
from dataflow.executor.base import JobExecutor
from dataflow.graph import DEFAULT_SPLIT_EVERY
from dataflow.registry import get_adapter, guess_adapter
from dataflow.run import ResultGenerator, plan_run, run, run_iter, run_lazy
from dataflow.sources import DEFAULT_PARTITION_BYTES
from dataflow.udf.base import UDF

if TYPE_CHECKING:
    from dataflow.analysis.base import Analysis, AnalysisResultSet
    from dataflow.analysis.com import COMAnalysis
    from dataflow.analysis.disk import DiskMaskAnalysis
    from dataflow.analysis.masks import MasksAnalysis
    from dataflow.analysis.point import PointMaskAnalysis
    from dataflow.analysis.radialfourier import RadialFourierAnalysis
    from dataflow.analysis.raw import PickFrameAnalysis
    from dataflow.analysis.ring import RingMaskAnalysis
    from dataflow.analysis.sum import SumAnalysis
    from dataflow.plot import Live2DPlot
    from dataflow.results import UDFResults
    from dataflow.sources import DataSet

__all__ = ["Context"]

_EXECUTORS = (
    "inline",
    "synchronous",
    "threads",
    "processes",
    "dask",
    "dask-integration",
    "dask-make-default",
    "delayed",
)


def _make_executor(spec: str, cpus: Any) -> JobExecutor:
    if spec in ("inline", "synchronous"):
        from dataflow.executor.inline import InlineJobExecutor

        return InlineJobExecutor()
    if spec == "threads":
        from dataflow.executor.concurrent import ConcurrentJobExecutor

        return ConcurrentJobExecutor(n_threads=_count(cpus))
    if spec == "processes":
        from dataflow.executor.concurrent import ProcessesJobExecutor

        return ProcessesJobExecutor(n_processes=_count(cpus))
    if spec in ("dask", "dask-make-default"):
        from dataflow.executor.dask import DaskJobExecutor

        client_kwargs = {"set_as_default": True} if spec == "dask-make-default" else None
        return DaskJobExecutor.make_local(cpus=cpus, client_kwargs=client_kwargs)
    if spec == "delayed":
        from dataflow.executor.delayed import DelayedJobExecutor

        return DelayedJobExecutor()
    if spec == "dask-integration":
        from dataflow.executor.integration import DaskIntegrationExecutor

        return DaskIntegrationExecutor()
    raise ExecutorSpecException(
        f"unknown executor {spec!r}; known executors: {', '.join(_EXECUTORS)}"
    )


def _accepts(adapter: Any, keyword: str) -> bool:
    import inspect

    try:
        return keyword in inspect.signature(adapter.open).parameters
    except (TypeError, ValueError):
        return False


def _count(cpus: Any) -> int | None:
    """A worker count from ``cpus``: a number, or an iterable of CPU ids (LiberTEM)."""
    if cpus is None or isinstance(cpus, int):
        return cpus
    if isinstance(cpus, (str, bytes)) or not isinstance(cpus, Iterable):
        raise TypeError(f"cpus is {cpus!r}; expected a number of workers or a list of CPU ids")
    return len(list(cpus))


class Context:
    """Entry point: load datasets, run UDFs, get results.

    Parameters
    ----------
    executor
        Where graphs run. ``None`` follows dask: the scheduler set in dask's
        configuration, the active ``dask.distributed`` client, or threads.
    plot_class
        Class of the live plots made for ``plots=True`` (matplotlib by default).
    split_every
        Children per node of the merge tree.

    Examples
    --------
    >>> from dataflow.api import Context
    >>> from dataflow.udf.sum import SumUDF
    >>> with Context.make_with("inline") as ctx:
    ...     ds = ctx.load("memory", data=np.ones((4, 4, 8, 8), dtype="float32"), sig_dims=2)
    ...     float(ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data.sum())
    1024.0
    """

    def __init__(
        self,
        executor: JobExecutor | None = None,
        plot_class: type[Live2DPlot] | None = None,
        *,
        split_every: int = DEFAULT_SPLIT_EVERY,
    ) -> None:
        if executor is None:
            from dataflow.executor.integration import DaskIntegrationExecutor

            executor = DaskIntegrationExecutor()
        if not isinstance(executor, JobExecutor):
            raise TypeError(
                f"executor is a {type(executor).__name__}; expected a JobExecutor such as "
                "InlineJobExecutor(), or use Context.make_with('threads')"
            )
        self.executor = executor
        self._plot_class = plot_class
        self.split_every = split_every
        #: the live plots of the last run with ``plots=``
        self.plots: list[Live2DPlot] = []

    @classmethod
    def make_with(
        cls,
        executor_spec: str = "dask",
        *,
        cpus: int | Iterable[int] | None = None,
        gpus: Any = None,
        plot_class: type[Live2DPlot] | None = None,
        **kwargs: Any,
    ) -> Context:
        """A Context with a named executor.

        Parameters
        ----------
        executor_spec
            ``"inline"`` (synchronous), ``"threads"``, ``"processes"``, ``"dask"`` (a local
            ``dask.distributed`` cluster, closed with the context), ``"dask-integration"``
            (dask's current scheduler or client), ``"dask-make-default"`` (``"dask"``, with
            its client made the default one).
        cpus
            Number of workers (threads, processes or cluster workers).
        """
        if gpus:
            raise ExecutorSpecException(f"gpus is {gpus!r}; dataflow runs on CPUs only")
        if not isinstance(executor_spec, str):
            raise TypeError(
                f"executor_spec is {executor_spec!r}; expected a name such as 'threads'"
            )
        return cls(
            executor=_make_executor(executor_spec.lower(), cpus), plot_class=plot_class, **kwargs
        )

    @property
    def _lazy_results(self) -> bool:
        """Whether ``run_udf`` returns lazy results (``make_with("delayed")``)."""
        return bool(getattr(self.executor, "lazy_results", False))

    @property
    def plot_class(self) -> type[Live2DPlot]:
        """The class of the live plots ``plots=True`` makes (matplotlib by default)."""
        if self._plot_class is None:
            from dataflow.plot import MPLLive2DPlot

            return MPLLive2DPlot
        return self._plot_class

    @plot_class.setter
    def plot_class(self, value: type[Live2DPlot] | None) -> None:
        self._plot_class = value

    # lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the executor's resources (pools, a cluster started by ``make_with``)."""
        self.executor.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Context executor={self.executor!r}>"

    # data -------------------------------------------------------------------------------------

    def load(self, filetype: str, *args: Any, io_backend: Any = None, **kwargs: Any) -> DataSet:
        """Open a dataset.

        Parameters
        ----------
        filetype
            ``"memory"`` (``data=``, ``sig_dims=``, ``num_partitions=``), ``"dask"`` (a dask
            array, ``sig_dims=``), a registered adapter's name, or ``"auto"`` (guess
            from ``path=``).
        *args, **kwargs
            Passed to the adapter's ``open``.

        Examples
        --------
        >>> ds = ctx.load("memory", data=np.zeros((8, 8, 16, 16)), sig_dims=2, num_partitions=2)
        >>> ds.get_num_partitions()
        2
        """
        if isinstance(filetype, str) and filetype.lower() == "auto":
            path = kwargs.get("path", args[0] if args else None)
            if path is None:
                raise TypeError("ctx.load('auto', ...) needs path=")
            adapter = guess_adapter(path)
        else:
            adapter = get_adapter(filetype)
        if io_backend is not None:
            if _accepts(adapter, "io_backend"):
                kwargs["io_backend"] = io_backend  # the adapter warns that it has no effect
            else:
                warnings.warn(
                    f"io_backend={io_backend!r} has no effect on ctx.load({filetype!r}, ...): "
                    "dataflow reads data its own way (LiberTEM's io_backend has no "
                    "counterpart). Leave it out",
                    DataflowWarning,
                    stacklevel=2,
                )
        kwargs.setdefault("min_partitions", self.executor.n_workers)
        per_thread = self.executor.memory_per_thread
        if per_thread and "partition_bytes" not in kwargs and _accepts(adapter, "partition_bytes"):
            # a worker holds about two partitions per thread next to its own memory
            kwargs["partition_bytes"] = max(2**20, min(DEFAULT_PARTITION_BYTES, per_thread // 8))
        return adapter.open(*args, **kwargs)

    # running ----------------------------------------------------------------------------------

    def _normalize(self, udf: UDF | Iterable[UDF]) -> tuple[list[UDF], bool]:
        if isinstance(udf, UDF):
            return [udf], False
        if isinstance(udf, (str, bytes)) or not isinstance(udf, Iterable):
            raise TypeError(f"udf is a {type(udf).__name__}; expected a UDF or a list of UDFs")
        udfs = list(udf)
        for u in udfs:
            if not isinstance(u, UDF):
                raise TypeError(f"udf contains a {type(u).__name__}; expected UDF instances")
        return udfs, True

    def _run_sync(
        self,
        dataset: DataSet,
        udf: Any,
        roi: Any,
        corrections: Any,
        progress: Any,
        backends: Any,
        plots: Any,
        split_every: int | None,
    ) -> Any:
        udfs, many = self._normalize(udf)
        check_backends(udfs, backends)
        if self._lazy_results:  # make_with("delayed"); progress and plots warned about
            plan = plan_run(dataset, udfs, roi, corrections)
            results = run_lazy(plan, split_every=split_every or self.split_every, labelled=False)
            return results if many else results[0]
        plan = plan_run(dataset, udfs, roi, corrections, self.executor)
        results, plots_made = run(
            self.executor,
            plan,
            progress=progress,
            plots=plots,
            plot_class=self.plot_class,
            split_every=split_every or self.split_every,
        )
        if plots_made:
            self.plots = plots_made
        return results if many else results[0]

    def run_udf(
        self,
        dataset: DataSet,
        udf: UDF | Iterable[UDF],
        roi: Any = None,
        corrections: Any = None,
        progress: Any = False,
        backends: Any = None,
        plots: Any = None,
        sync: bool = True,
        *,
        split_every: int | None = None,
        lazy: bool = False,
    ) -> Any:
        """Run one UDF, or several in one pass over the data.

        Parameters
        ----------
        dataset
            From :meth:`load`.
        udf
            A UDF, or a list of UDFs sharing one pass over the data.
        roi
            Frames to process: a boolean mask of the navigation shape (or any form
            LiberTEM accepts, see :func:`dataflow.roi.normalize_roi`).
        corrections
            A :class:`~dataflow.corrections.CorrectionSet` applied to every tile.
        progress
            True for a progress bar, or a :class:`~dataflow.progress.ProgressReporter`.
        backends
            Array backends to allow; dataflow runs ``("numpy",)``.
        plots
            True for live plots of all 2D buffers; see :mod:`dataflow.plot`.
        sync
            False returns a coroutine.
        split_every
            Children per merge-tree node for this run.
        lazy
            Compute nothing: return, per UDF, an ``xarray.Dataset`` backed by dask
            arrays of the run's graph (see :mod:`dataflow.lazy`). ``progress``,
            ``plots`` and ``sync`` do not apply.

        Returns
        -------
        dict or tuple of dict
            Buffer name to :class:`~dataflow.results.BufferResult`; a tuple of such
            mappings if ``udf`` is a list. With ``lazy=True``, ``xarray.Dataset``
            objects instead.

        Examples
        --------
        >>> from dataflow.udf.sum import SumUDF
        >>> lazy = ctx.run_udf(dataset=dataset, udf=SumUDF(), lazy=True)
        >>> lazy["intensity"].dims, type(lazy["intensity"].data).__name__
        (('det_y', 'det_x'), 'Array')
        """
        if lazy:
            udfs, many = self._normalize(udf)
            check_backends(udfs, backends)
            if progress or plots:
                raise ValueError(
                    "progress and plots need a running computation; lazy=True "
                    "returns before anything runs"
                )
            plan = plan_run(dataset, udfs, roi, corrections)
            results = run_lazy(plan, split_every=split_every or self.split_every)
            return results if many else results[0]
        if self._lazy_results:
            # the delayed executor's run_udf returns before anything runs
            for name, value in (("progress", progress), ("plots", plots)):
                if value is not None and value is not False:
                    warnings.warn(
                        f"{name}={value!r} has no effect with the delayed executor "
                        "(Context.make_with('delayed')): run_udf returns dask arrays "
                        f"before anything runs; drop {name}= or use another executor",
                        DataflowWarning,
                        stacklevel=2,
                    )
        args = (dataset, udf, roi, corrections, progress, backends, plots, split_every)
        if not sync:
            return asyncio.to_thread(self._run_sync, *args)
        return self._run_sync(*args)

    def run_udf_iter(
        self,
        dataset: DataSet,
        udf: UDF | Iterable[UDF],
        roi: Any = None,
        corrections: Any = None,
        progress: Any = False,
        backends: Any = None,
        plots: Any = None,
        sync: bool = True,
        *,
        split_every: int | None = None,
    ) -> ResultGenerator | AsyncResultGenerator:
        """Partial results while the run goes on; the last one is complete.

        Each item has ``.buffers`` (one result mapping per UDF) and ``.damage`` (the
        frames merged so far). Closing the generator early cancels the remaining work.
        ``sync=False`` returns an async generator. Arguments as for :meth:`run_udf`.
        """
        udfs, _ = self._normalize(udf)
        check_backends(udfs, backends)
        plan = plan_run(dataset, udfs, roi, corrections, self.executor)
        gen = run_iter(
            self.executor,
            plan,
            progress=progress,
            plots=plots,
            plot_class=self.plot_class,
            split_every=split_every or self.split_every,
        )
        if sync:
            return gen
        return AsyncResultGenerator(gen)

    def display(self, dataset: DataSet, udf: UDF | Iterable[UDF], roi: Any = None) -> Any:
        """The buffers ``udf`` declares on ``dataset``, as text and HTML; nothing is read.

        See :func:`dataflow.display.display`.
        """
        from dataflow.display import display

        return display(dataset, udf, roi)

    def map(
        self,
        dataset: DataSet,
        f: Any,
        roi: Any = None,
        progress: Any = False,
        corrections: Any = None,
        backends: Any = None,
    ) -> Any:
        """Apply ``f`` to every frame; the ``result`` buffer of an :class:`AutoUDF` run.

        Examples
        --------
        >>> res = ctx.map(dataset=dataset, f=lambda frame: frame.max())
        >>> res.data.shape
        (16, 16)
        """
        from dataflow.udf.auto import AutoUDF

        res = self.run_udf(
            dataset=dataset,
            udf=AutoUDF(f=f),
            roi=roi,
            progress=progress,
            corrections=corrections,
            backends=backends,
        )
        return res["result"]

    def export_dataset(
        self,
        dataset: DataSet,
        *,
        path: Any,
        progress: bool = False,
        overwrite: bool = False,
        format: Literal["npy", "zarr"] | None = None,
    ) -> None:
        """Write ``dataset`` to ``path`` as ``.npy`` (as LiberTEM does) or zarr, streaming.

        See :func:`dataflow.export.export_dataset`.
        """
        from dataflow.export import export_dataset

        export_dataset(
            self, dataset, path=path, progress=progress, overwrite=overwrite, format=format
        )

    # analyses (LiberTEM's analysis API, thin layers over the UDFs) ---------------------------

    def run(
        self, job: Analysis, roi: Any = None, progress: Any = False, corrections: Any = None
    ) -> AnalysisResultSet:
        """Run an analysis from a ``create_*_analysis`` method; its results, labelled.

        A ``roi`` replaces the analysis' own (the picked frame of a pick analysis);
        navigation-shaped results are NaN outside it. See
        :func:`dataflow.analysis.base.run_analysis` and ``docs/analyses.md``.

        Raises
        ------
        TypeError
            If ``job`` is not an :class:`~dataflow.analysis.base.Analysis`.

        Examples
        --------
        >>> res = ctx.run(ctx.create_sum_analysis(dataset=dataset), roi=dataset.roi[0])
        >>> res.intensity.raw_data.shape
        (32, 32)
        """
        from dataflow.analysis.base import run_analysis

        return run_analysis(self, job, roi=roi, progress=progress, corrections=corrections)

    def create_mask_analysis(
        self,
        factories: Any,
        dataset: DataSet,
        use_sparse: Any = None,
        mask_count: int | None = None,
        mask_dtype: Any = None,
        dtype: Any = None,
    ) -> MasksAnalysis:
        """Integrate frames over masks: results ``mask_0``, ``mask_1``, ...

        Arguments as for :class:`~dataflow.udf.masks.ApplyMasksUDF` (``factories`` is its
        ``mask_factories``, ``dtype`` its ``preferred_dtype``).
        """
        from dataflow.analysis.masks import MasksAnalysis

        parameters = {"factories": factories, "use_sparse": use_sparse, "mask_count": mask_count}
        parameters.update(mask_dtype=mask_dtype, dtype=dtype)
        return MasksAnalysis(dataset=dataset, parameters=parameters)

    def create_com_analysis(
        self,
        dataset: DataSet,
        cx: float | None = None,
        cy: float | None = None,
        mask_radius: float | None = None,
        flip_y: bool = False,
        mask_radius_inner: float | None = None,
        scan_rotation: float = 0.0,
    ) -> COMAnalysis:
        """Centre of mass within a disk or ring: ``field``, ``magnitude``, ``divergence``,
        ``curl``, ``x``, ``y``. See :class:`~dataflow.analysis.com.COMAnalysis`."""
        from dataflow.analysis.base import given
        from dataflow.analysis.com import COMAnalysis

        parameters = given(cx=cx, cy=cy, r=mask_radius, ri=mask_radius_inner)
        parameters.update(given(flip_y=flip_y, scan_rotation=scan_rotation))
        return COMAnalysis(dataset=dataset, parameters=parameters)

    def create_radial_fourier_analysis(
        self,
        dataset: DataSet,
        cx: float | None = None,
        cy: float | None = None,
        ri: float | None = None,
        ro: float | None = None,
        n_bins: int | None = None,
        max_order: int | None = None,
        use_sparse: Any = None,
    ) -> RadialFourierAnalysis:
        """Fourier coefficients along rings. See
        :class:`~dataflow.analysis.radialfourier.RadialFourierAnalysis`."""
        from dataflow.analysis.base import given
        from dataflow.analysis.radialfourier import RadialFourierAnalysis

        parameters = given(cx=cx, cy=cy, ri=ri, ro=ro, n_bins=n_bins, max_order=max_order)
        parameters.update(given(use_sparse=use_sparse))
        return RadialFourierAnalysis(dataset=dataset, parameters=parameters)

    def create_disk_analysis(
        self,
        dataset: DataSet,
        cx: float | None = None,
        cy: float | None = None,
        r: float | None = None,
    ) -> DiskMaskAnalysis:
        """Integrate frames over a disk: ``intensity``, ``intensity_log``."""
        from dataflow.analysis.base import given
        from dataflow.analysis.disk import DiskMaskAnalysis

        return DiskMaskAnalysis(dataset=dataset, parameters=given(cx=cx, cy=cy, r=r))

    def create_ring_analysis(
        self,
        dataset: DataSet,
        cx: float | None = None,
        cy: float | None = None,
        ri: float | None = None,
        ro: float | None = None,
    ) -> RingMaskAnalysis:
        """Integrate frames over a ring: ``intensity``, ``intensity_log``."""
        from dataflow.analysis.base import given
        from dataflow.analysis.ring import RingMaskAnalysis

        return RingMaskAnalysis(dataset=dataset, parameters=given(cx=cx, cy=cy, ri=ri, ro=ro))

    def create_point_analysis(
        self, dataset: DataSet, x: int | None = None, y: int | None = None
    ) -> PointMaskAnalysis:
        """The detector pixel ``(y, x)`` of every frame: ``intensity``, ``intensity_log``.

        Raises
        ------
        ValueError
            If the dataset has more than two navigation dimensions.
        """
        from dataflow.analysis.base import given
        from dataflow.analysis.point import PointMaskAnalysis

        nav = tuple(dataset.shape.nav)
        if len(nav) > 2:
            raise ValueError(
                f"the dataset's navigation shape is {nav}; the point analysis needs at most "
                "two navigation dimensions"
            )
        return PointMaskAnalysis(dataset=dataset, parameters=given(cx=x, cy=y))

    def create_sum_analysis(self, dataset: DataSet) -> SumAnalysis:
        """The sum of all frames: ``intensity`` (log picture), ``intensity_lin``."""
        from dataflow.analysis.sum import SumAnalysis

        return SumAnalysis(dataset=dataset, parameters={})

    def create_pick_analysis(
        self, dataset: DataSet, x: int, y: int | None = None, z: int | None = None
    ) -> PickFrameAnalysis:
        """The frame at ``(z, y, x)``, as many coordinates as navigation dimensions:
        ``intensity`` (log picture), ``intensity_lin``."""
        from dataflow.analysis.base import given
        from dataflow.analysis.raw import PickFrameAnalysis

        return PickFrameAnalysis(dataset=dataset, parameters=given(x=x, y=y, z=z))


def check_backends(udfs: Iterable[UDF], backends: Any) -> None:
    """Raise unless every UDF can run on NumPy, the backend dataflow runs.

    Raises
    ------
    ValueError
        If ``backends`` excludes NumPy, or a UDF supports no NumPy backend (the message
        names the backends the UDF asks for and whether they are installed).
    """
    if backends is not None:
        wanted = {backends} if isinstance(backends, str) else set(backends)
        if "numpy" not in wanted:
            raise ValueError(
                f"backends is {backends!r}; dataflow runs the 'numpy' backend only (on CPUs)"
            )
    for udf in udfs:
        offered = udf.get_backends()
        offered = (offered,) if isinstance(offered, str) else tuple(offered)
        if "numpy" not in offered:
            import importlib.util

            missing = [b for b in offered if importlib.util.find_spec(b.split(".")[0]) is None]
            hint = f" ({', '.join(missing)} not installed)" if missing else ""
            raise ValueError(
                f"{type(udf).__name__}.get_backends() returned {offered!r}{hint}; dataflow "
                "runs the 'numpy' backend only: add UDF.BACKEND_NUMPY to the UDF's backends"
            )


class AsyncResultGenerator:
    """What ``run_udf_iter(..., sync=False)`` returns: an async iterator of partial results.

    The run's steps happen in a worker thread, so the event loop stays free.
    """

    def __init__(self, gen: ResultGenerator) -> None:
        self._gen = gen

    def __aiter__(self) -> AsyncResultGenerator:
        return self

    async def __anext__(self) -> UDFResults:
        done = object()
        item = await asyncio.to_thread(next, self._gen, done)
        if item is done:
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    async def aclose(self) -> None:
        """Stop the run: partitions not yet started are cancelled."""
        await asyncio.to_thread(self._gen.close)

    async def athrow(self, *args: Any) -> UDFResults:
        """Raise an exception inside the run."""
        return await asyncio.to_thread(self._gen.throw, *args)

    async def update_parameters_experimental(self, parameters: Any) -> None:
        """See :meth:`dataflow.run.ResultGenerator.update_parameters_experimental`."""
        self._gen.update_parameters_experimental(parameters)
