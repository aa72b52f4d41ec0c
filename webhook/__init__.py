"""greenlight: carbon-aware admission for Kubernetes Jobs."""

__version__ = "0.1.0"
