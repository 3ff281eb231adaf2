"""Make the Git server fixtures of ``support.gitservers`` available to these tests."""

from support.gitservers import (  # noqa: F401 - re-exported pytest fixtures
    git_daemon,
    git_home,
    git_http,
    git_https,
    git_root,
    git_ssh,
)
