"""Option groups and error reporting shared by every `stoker` sub-command."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from stoker_agent import logs, oserrors
from stoker_core.durations import parse_period
from stoker_core.errors import ExitCode, Problem, StokerError
from stoker_core.redaction import MIN_SECRET_LENGTH
from stoker_core.reports import error_report

F = TypeVar("F", bound=Callable[..., Any])
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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


def _var_files(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f'"{value}" is not NAME=FILE', ctx=ctx, param=param)
        try:
            with open(path, encoding="utf-8") as handle:
                secret = handle.read().rstrip("\n")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise click.BadParameter(f"{path}: {why}", ctx=ctx, param=param) from None
        if 0 < len(secret.strip()) < MIN_SECRET_LENGTH:
            click.echo(
                f"warning: --var-file {name}: a value under {MIN_SECRET_LENGTH} characters is "
                "not masked in logs or diffs (masking it would shred them)",
                err=True,
            )
        logs.register_secret(secret)
        out[name] = secret
    return out


var_file_option = click.option(
    "--var-file",
    "var_files",
    multiple=True,
    callback=_var_files,
    metavar="NAME=FILE",
    help="Template variable {{.Vars.NAME}} read from FILE (kept out of Git and logs).",
)

OUTPUTS = ("text", "json", "yaml")

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUTS),
    default="text",
    show_default=True,
    help="Output format (json and yaml carry the same fields).",
)


def emit(body: dict[str, Any], output: str, *, compact: bool = False) -> None:
    """Print a report as JSON or YAML on stdout (compact: one JSON line / one YAML document)."""
    if output == "yaml":
        import yaml  # only when asked: a plan in text or JSON never pays for it

        from stoker_core.markup import hides_anything

        text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
        if hides_anything(text):  # PyYAML sends bidi overrides as they are: escape them all
            text = yaml.safe_dump(body, sort_keys=False, allow_unicode=False, width=100)
        click.echo(("---\n" if compact else "") + text, nl=False)
    elif compact:
        click.echo(json.dumps(body, separators=(",", ":")))
    else:
        click.echo(json.dumps(body, indent=2))


class Period(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.3 on
    """A period as a GatewaySync writes one: seconds (`30`, like syncPeriod) or a Go duration
    (`30s`, `5m`, like polling.interval)."""

    name = "period"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Return seconds, or fail as a usage error naming the option and the forms it takes."""
        if isinstance(value, float):
            return value
        try:
            return parse_period(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


def http_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check an http(s) URL option has a scheme and a host; a usage error says how to write it."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        return value
    raise click.BadParameter(
        f'"{value}" is not an http(s) URL; write the scheme and host, e.g. '
        f'"http://{value.split("://")[-1] or "localhost:8088"}"',
        ctx=ctx,
        param=param,
    )


def one_line(text: str) -> str:
    """A message as one terminal-safe line: git's (or a server's) multi-line words joined, and
    control characters (terminal escapes from a hostile server or file) shown, not obeyed."""
    joined = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], joined)


def fail(problems: Sequence[Problem], output: str, code: ExitCode = ExitCode.ERROR) -> None:
    """Print problems (one line each on stderr; JSON or YAML on stdout too), exit with `code`."""
    for problem in problems:
        click.echo(f"error: {one_line(str(problem))}", err=True)
    if output != "text":
        emit(dict(error_report(problems)), output)
    sys.exit(code)


def reporting_errors(func: F) -> F:
    """Turn StokerError into a clean message and its exit code; no traceback for user errors."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StokerError as e:
            fail(e.problems, kwargs.get("output", "text"), e.exit_code)
        except BrokenPipeError:
            raise  # the reader of our output went away: cli.main ends quietly
        except OSError as e:
            # The machine, not the input: a read-only or full filesystem, a missing /tmp, a
            # permission. Said plainly, without a traceback.
            fail([_environment_problem(e)], kwargs.get("output", "text"))

    return wrapper  # type: ignore[return-value]


def _environment_problem(error: OSError) -> Problem:
    message, where = oserrors.describe(error)
    return Problem(message=message, path=where)
