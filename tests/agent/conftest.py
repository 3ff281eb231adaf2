"""Fixtures for agent tests: the real Git servers."""

from support.gitservers import (  # noqa: F401
    git_daemon,
    git_home,
    git_http,
    git_https,
    git_root,
    git_ssh,
)
