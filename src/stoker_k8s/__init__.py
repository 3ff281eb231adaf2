"""Stoker Kubernetes adapters."""
