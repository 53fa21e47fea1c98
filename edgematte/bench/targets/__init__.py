"""Benchmark targets: :mod:`.base` (the protocol), one module per kind of target, :mod:`.registry` (specs)."""
