"""Fixtures for the Kubernetes adapter tests (the real control plane)."""

from support.gitservers import git_home, git_root, git_ssh  # noqa: F401
from support.kubefixtures import *  # noqa: F403
