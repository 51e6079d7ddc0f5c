"""Data pipelines: each loader takes an explicit path, defaulting to ``$RECURRENT_DATA_DIR``."""
