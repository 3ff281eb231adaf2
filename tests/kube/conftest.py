"""Fixtures for tests against the real kube-apiserver + etcd (see docs/testenv.md)."""

from support.kubefixtures import *  # noqa: F403
