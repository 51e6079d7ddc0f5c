"""Data pipelines: loaders that read the shared data sets, and the padding/batching they share."""
