"""LiberTEM's ``libertem.io.dataset`` import paths."""
