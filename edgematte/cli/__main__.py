"""``python -m edgematte.cli``."""

from .app import main

main()
