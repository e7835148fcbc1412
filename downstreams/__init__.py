"""Downstreams: probes trained on frozen, cached upstream features."""
