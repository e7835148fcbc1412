"""Upstreams: one file per model, found by file name; `_`-prefixed files are helpers."""
