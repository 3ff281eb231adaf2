"""Fixtures for the Kubernetes adapter tests (the real control plane)."""

from support.kubefixtures import *  # noqa: F403
