"""Progress reporting for runs: a tqdm bar, or any :class:`ProgressReporter`."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["ProgressReporter", "ProgressState", "TQDMProgressReporter", "make_reporter"]


class ProgressState(NamedTuple):
    """How far a run is (LiberTEM's ``ProgressState``, fields in its order)."""

    num_frames_complete: int
    num_frames_total: int
    num_part_complete: int
    num_part_in_progress: int
    num_part_total: int
    progress_id: str


class ProgressReporter:
    """Receives the state of a run: once at the start, per partition, once at the end.

    Subclass it and pass an instance as ``progress=`` to ``run_udf``.
    """

    def start(self, state: ProgressState) -> None:
        """The run starts."""

    def update(self, state: ProgressState) -> None:
        """A partition finished."""

    def end(self, state: ProgressState) -> None:
        """The run finished (or failed)."""


class TQDMProgressReporter(ProgressReporter):
    """A tqdm bar that advances by one per finished partition."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, state: ProgressState) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=state.num_part_total, unit="partition", desc=state.progress_id)

    def update(self, state: ProgressState) -> None:
        if self._bar is not None:
            self._bar.update(state.num_part_complete - self._bar.n)

    def end(self, state: ProgressState) -> None:
        if self._bar is not None:
            self._bar.update(state.num_part_complete - self._bar.n)
            self._bar.close()
            self._bar = None


def make_reporter(progress: bool | ProgressReporter) -> ProgressReporter | None:
    """The reporter for a ``progress=`` argument, or None for no progress."""
    if isinstance(progress, ProgressReporter):
        return progress
    if progress is True:
        return TQDMProgressReporter()
    if progress in (False, None):
        return None
    raise TypeError(f"progress is {progress!r}; expected True, False or a ProgressReporter")
