"""LiberTEM's ``libertem.io`` import paths."""
