"""Error types shared by every Stoker component, with what a caller should do next.

Each error carries an exit code for the command line and says whether retrying later can help,
so loops and commands decide from the type, never by parsing messages.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

import attrs

from stoker_core.fieldwise import FIELDWISE


class ExitCode(enum.IntEnum):
    """Process exit codes shared by every `stoker` command."""

    OK = 0
    ERROR = 1
    CHANGES_PENDING = 2
    ROLLED_BACK = 3
    BLOCKED = 4
    USAGE = 64


@attrs.frozen(slots=True, kw_only=True)
class Problem:
    """One thing wrong with an input: where (a field path or a file path) and what to do."""

    __eq__, __hash__, __repr__ = FIELDWISE

    message: str
    field: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = self.field or self.path
        return f"{where}: {self.message}" if where else self.message

    def to_json(self) -> dict[str, str]:
        """Return the wire form used in `--output json` error objects."""
        out: dict[str, str] = {}
        if self.field is not None:
            out["field"] = self.field
        if self.path is not None:
            out["path"] = self.path
        out["message"] = self.message
        return out


class StokerError(Exception):
    """Base of every error Stoker raises on purpose; the message is for people."""

    exit_code: ExitCode = ExitCode.ERROR
    retryable: bool = False

    @property
    def problems(self) -> Sequence[Problem]:
        """Return the problems this error stands for (one by default)."""
        return (Problem(message=str(self)),)


class ProblemsError(StokerError):
    """An error made of one or more problems, each naming its field or path."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self._problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self._problems))

    @property
    def problems(self) -> Sequence[Problem]:
        """Return every problem, in a stable order."""
        return self._problems


class InvalidInput(ProblemsError):
    """Input from outside (a manifest, a repository, a file) is wrong; retrying will not help."""

    @classmethod
    def one(
        cls, message: str, *, field: str | None = None, path: str | None = None
    ) -> InvalidInput:
        """Build an error holding a single problem."""
        return cls([Problem(message=message, field=field, path=path)])


class TemplateError(InvalidInput):
    """A Go-template string or file cannot be rendered."""


class PatchError(InvalidInput):
    """A JSON patch cannot be applied to its file."""


class PlanRefused(ProblemsError):
    """Planning found a change Stoker will not make unless told to (e.g. emptying a root)."""


class UsageError(StokerError):
    """The command line itself is wrong."""

    exit_code = ExitCode.USAGE


class Blocked(StokerError):
    """Work was refused for now by policy or by another holder of the lock."""

    exit_code = ExitCode.BLOCKED
    retryable = True


class TemporaryError(StokerError):
    """Something outside us is unavailable; retry after `delay` seconds (None: use backoff)."""

    retryable = True

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay
