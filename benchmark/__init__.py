"""melbench: the harness. It discovers upstreams by file name and never imports one by name."""

__version__ = "0.1.0"
