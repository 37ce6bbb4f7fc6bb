"""The package's version: the one place it is written (pyproject.toml reads it through hatch; the psij descriptor
reads the installed metadata made from it)."""

__version__ = "0.1.0"
