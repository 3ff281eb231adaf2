"""The `stoker` command: one click group whose sub-commands are imported only when run.

`stoker plan` therefore never imports the Kubernetes client, and this package never imports
`stoker_k8s`: sub-commands are named here by module path and loaded by importlib.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
import threading
from typing import Any, NoReturn

import click

from stoker_core.errors import ExitCode, StokerError

# name → (module:attribute, one-line help). Help text lives here so `stoker --help` loads nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("stoker_agent.commands.plan:plan", "Show what a sync would change (exit 2 if any)."),
    "sync": ("stoker_agent.commands.sync:sync", "Sync a data directory to a commit and rescan."),
    "validate": ("stoker_agent.commands.validate:validate", "Check GatewaySync manifests."),
    "history": (  # also --data-dir, which imports no Kubernetes client
        "stoker_k8s.commands.history:history_command",
        "Show what a GatewaySync published, or what a data directory recorded, newest first.",
    ),
    # Kubernetes roles live in stoker_k8s, named here only by module path (imported on use).
    "webhook": ("stoker_k8s.commands.webhook:webhook", "Serve the admission webhooks (TLS)."),
    "receiver": ("stoker_k8s.commands.receiver:receiver", "Serve the push receiver."),
    "agent": ("stoker_k8s.commands.agent:agent", "Run the in-cluster sync agent (sidecar)."),
    "controller": ("stoker_k8s.commands.controller:controller", "Run the GatewaySync controller."),
    "status": ("stoker_k8s.commands.status:status", "Show every GatewaySync and its gateways."),
    "approve": (
        "stoker_k8s.commands.approve:approve",
        "Approve the pending commit of a GatewaySync's rollout (or one step of it).",
    ),
    "rollout": ("stoker_k8s.commands.approve:rollout", "Act on a rollout: resume a halted one."),
    "release-gatewaysyncs": (
        "stoker_k8s.commands.release:release_gatewaysyncs",
        "Remove Stoker's finalizer from every GatewaySync (after uninstalling the controller).",
    ),
}

# Top-level import name → the extra of the `stoker` distribution that installs it. A module
# missing from this table is part of the base install: its absence means a broken install.
EXTRAS: dict[str, str] = {
    "kubernetes": "k8s",
    "gunicorn": "k8s",
    "prometheus_client": "k8s",
    "jwt": "k8s",
    "cryptography": "k8s",
}


# A plan allocates ~100,000 small long-lived objects (entries, records, operations); at the
# default threshold (700) the cyclic collector would walk them hundreds of times. Stoker's data
# holds no reference cycles worth collecting early. Every `stoker` process, the agent included.
GC_THRESHOLDS = (50_000, 20, 20)


class MissingDependency(StokerError):
    """A sub-command needs a Python package this installation lacks."""

    def __init__(self, command: str, module: str) -> None:
        extra = EXTRAS.get(module)
        if extra:
            message = f"stoker {command} needs the '{extra}' extra: pip install 'stoker[{extra}]'"
        else:
            message = (
                f"stoker {command} needs the Python package '{module}', which is missing: "
                "reinstall with pip install --force-reinstall stoker"
            )
        super().__init__(message)


def _no_color(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.color = False


# Accepted by the group and by every sub-command (added where each is loaded).
NO_COLOR = click.Option(
    ["--no-color"],
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_no_color,
    help="No colours in the output (also when the NO_COLOR variable is set).",
)


class LazyGroup(click.Group):
    """A group that imports a sub-command's module only when that sub-command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target[0].partition(":")
        ctx.meta["stoker.command"] = cmd_name
        try:
            command = getattr(importlib.import_module(module_name), attr)
        except ModuleNotFoundError as e:
            raise _missing(cmd_name, e) from None
        assert isinstance(command, click.Command)
        if NO_COLOR not in command.params:
            command.params.append(NO_COLOR)
        # What the imports made lives until exit: keep it out of the cyclic collector's sight,
        # so neither its passes during a sync nor the one at exit walk it (~15 ms a process).
        gc.freeze()
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; a package it imports on use and that is missing is one line."""
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as e:
            raise _missing(ctx.meta.get("stoker.command", "?"), e) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _missing(command: str, error: ModuleNotFoundError) -> Exception:
    """The one-line error for a missing third-party package; our own modules missing is a bug."""
    module = (error.name or "").partition(".")[0]
    if not module or module.startswith("stoker"):
        return error
    return MissingDependency(command, module)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stoker", prog_name="stoker")
def group() -> None:
    """Stoker keeps Ignition gateway data directories equal to a Git commit.

    Shell completion: eval "$(_STOKER_COMPLETE=bash_source stoker)" (zsh_source, fish_source).
    """
    if os.environ.get("NO_COLOR"):  # https://no-color.org: set and not empty
        click.get_current_context().color = False


group.params.append(NO_COLOR)


def _usage(error: click.exceptions.UsageError) -> str:
    """A usage error as one line: what is wrong and where to read more."""
    where = error.ctx.command_path if error.ctx else "stoker"
    return f"error: {error.format_message()} (see '{where} --help')"


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: every error is one line on stderr with its exit code (README's
    table), usage errors exit 64. The process ends at once (see _exit_at_once)."""
    try:
        _run(argv)
    except SystemExit as e:  # how every command and error path ends: with its code
        if e.code is not None and not isinstance(e.code, int):
            raise  # a message to print: the interpreter's own exit prints it
        _exit_at_once(e.code or ExitCode.OK)
    _exit_at_once(ExitCode.OK)


def _run(argv: list[str] | None) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        group.main(args=argv, prog_name="stoker", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()  # `stoker` alone: the help text is what was asked for
        sys.exit(ExitCode.USAGE)
    except click.exceptions.UsageError as e:
        click.echo(_usage(e), err=True)
        sys.exit(ExitCode.USAGE)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.ERROR)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(ExitCode.USAGE)
    except StokerError as e:
        from stoker_agent.commands.common import one_line

        click.echo(f"error: {one_line(str(e))}", err=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        # The reader went away (`stoker plan | head`): no traceback, and none at exit either
        # when Python flushes stdout into the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ExitCode.ERROR)


def _exit_at_once(code: int) -> NoReturn:
    """Exit without taking the interpreter apart: freeing, one by one, every object a sync of
    a large tree made (~8 ms of a cold `stoker sync` at 10,000 files) is work the kernel does
    at once. What an exit must still do is done: atexit handlers (logging's flush, weakref
    finalizers such as a walker child's reaping) and the flush of stdout and stderr. While a
    thread the interpreter would wait for still runs, the exit is the ordinary one."""
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()  # what sys.exit would run; os._exit runs none of it
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader went away, a full disk: what was said is not all written
        code = ExitCode.ERROR
    os._exit(code)


if __name__ == "__main__":
    main()
