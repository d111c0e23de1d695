"""LiberTEM import path for the sparse-array helpers (their home: :mod:`dataflow.masks`)."""

from dataflow.masks import is_sparse, to_dense, to_sparse

__all__ = ["is_sparse", "to_dense", "to_sparse"]
