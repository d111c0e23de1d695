"""File and store formats for dataflow, installed as ``dataflow.adapters``.

Each adapter registers itself under the ``dataflow.adapters`` entry point group
(see ``pyproject.toml``) and is imported only when ``ctx.load`` asks for it.
"""
