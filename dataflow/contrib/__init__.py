"""LiberTEM's ``libertem.contrib`` import paths."""
