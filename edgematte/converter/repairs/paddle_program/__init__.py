"""Repairs of a parsed Paddle ``ProgramDesc`` (one module each; see ``repairs/registry.py``)."""
