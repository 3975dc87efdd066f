"""Job storage: the ``CloudStorage`` interface and the generic fsspec implementation."""
