"""Option groups and error reporting shared by every `stoker` sub-command."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from stoker_agent import oserrors
from stoker_core.errors import ExitCode, Problem, StokerError
from stoker_core.reports import error_report

F = TypeVar("F", bound=Callable[..., Any])


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def _label(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f'"{value}" is not KEY=VALUE', ctx=ctx, param=param)
        labels[name] = text
    return labels


identity_options = _stack(
    click.option("--gateway-name", help="Gateway identity ({{.GatewayName}}); default: pod name."),
    click.option("--profile", help="Profile to use; default: the profile named 'default'."),
    click.option("--pod-name", default="", help="Pod name ({{.PodName}}, PodOrdinal)."),
    click.option("--namespace", default="", help="Namespace ({{.Namespace}}); default: the CR's."),
    click.option(
        "--label",
        "labels",
        multiple=True,
        callback=_label,
        metavar="KEY=VALUE",
        help="Pod label for {{.Labels.KEY}}; repeat for more.",
    ),
)

source_options = _stack(
    click.option(
        "--cr",
        "cr_file",
        required=True,
        type=click.Path(dir_okay=False),
        help="YAML file holding the GatewaySync.",
    ),
    click.option("--cr-name", help="Which GatewaySync of a multi-document file to use."),
    click.option("--repo", required=True, help="Repository: a local path or a URL."),
    click.option("--ref", default=None, help="Branch, tag or commit SHA; default HEAD."),
)

output_option = click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)


def fail(problems: Sequence[Problem], output: str, code: ExitCode = ExitCode.ERROR) -> None:
    """Print problems (one per line on stderr; JSON on stdout too) and exit with `code`."""
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if output == "json":
        click.echo(json.dumps(error_report(problems), indent=2))
    sys.exit(code)


def reporting_errors(func: F) -> F:
    """Turn StokerError into a clean message and its exit code; no traceback for user errors."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StokerError as e:
            fail(e.problems, kwargs.get("output", "text"), e.exit_code)
        except OSError as e:
            # The machine, not the input: a read-only or full filesystem, a missing /tmp, a
            # permission. Said plainly, without a traceback.
            fail([_environment_problem(e)], kwargs.get("output", "text"))

    return wrapper  # type: ignore[return-value]


def _environment_problem(error: OSError) -> Problem:
    message, where = oserrors.describe(error)
    return Problem(message=message, path=where)
