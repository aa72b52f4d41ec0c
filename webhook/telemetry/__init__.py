"""Prometheus metrics and log configuration, shared by the webhook and the reconciler."""
