"""Fixtures for agent tests: the real Git servers; a gateway simulator with its API token."""

from support.gitservers import (  # noqa: F401
    git_daemon,
    git_home,
    git_http,
    git_https,
    git_root,
    git_ssh,
)
from support.stokercli import simulated_gateway  # noqa: F401
