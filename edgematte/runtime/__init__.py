"""The small runtime: pre/post-processing profiles and inference backends (no paddle, no tensorflow)."""
