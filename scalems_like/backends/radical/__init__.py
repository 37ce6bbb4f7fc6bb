"""The ``radical`` backend: the same workflow on RADICAL-Pilot (docs/radical.md). Imports no radical.pilot until a
session's first pilot needs it."""
