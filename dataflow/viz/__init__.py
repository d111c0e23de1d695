"""Live plots of UDF results (LiberTEM's ``libertem.viz``)."""
