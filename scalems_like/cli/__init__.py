"""The ``scalems-like`` command line."""
