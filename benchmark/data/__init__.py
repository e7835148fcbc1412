"""Builders of the embedded corpus (`melbench data build`), public-dataset loaders and
bring-your-own manifests. Everything lands in the manifest form of `benchmark.data.manifest`."""
