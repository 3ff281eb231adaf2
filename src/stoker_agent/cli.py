"""The `stoker` command: one click group whose sub-commands are imported only when run.

`stoker plan` therefore never imports the Kubernetes client, and this package never imports
`stoker_k8s`: sub-commands are named here by module path and loaded by importlib.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any

import click

from stoker_core.errors import ExitCode

# name → (module:attribute, one-line help). Help text lives here so `stoker --help` loads nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("stoker_agent.commands.plan:plan", "Show what a sync would change (exit 2 if any)."),
    "sync": ("stoker_agent.commands.sync:sync", "Sync a data directory to a commit and rescan."),
    "validate": ("stoker_agent.commands.validate:validate", "Check GatewaySync manifests."),
    # Kubernetes roles live in stoker_k8s, named here only by module path (imported on use).
    "webhook": ("stoker_k8s.commands.webhook:webhook", "Serve the admission webhooks (TLS)."),
    "receiver": ("stoker_k8s.commands.receiver:receiver", "Serve the push receiver."),
    "agent": ("stoker_k8s.commands.agent:agent", "Run the in-cluster sync agent (sidecar)."),
    "controller": ("stoker_k8s.commands.controller:controller", "Run the GatewaySync controller."),
    "status": ("stoker_k8s.commands.status:status", "Show every GatewaySync and its gateways."),
}


class LazyGroup(click.Group):
    """A group that imports a sub-command's module only when that sub-command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target[0].partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        # What the imports made lives until exit: keep it out of the cyclic collector's sight,
        # so neither its passes during a sync nor the one at exit walk it (~15 ms a process).
        gc.freeze()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stoker", prog_name="stoker")
def group() -> None:
    """Stoker keeps Ignition gateway data directories equal to a Git commit."""


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the group, mapping click's usage errors to exit code 64."""
    # A plan allocates ~100,000 small long-lived objects (entries, records, operations); at the
    # default threshold (700) the cyclic collector would walk them hundreds of times. Stoker's
    # data holds no reference cycles worth collecting early.
    gc.set_threshold(50_000, 20, 20)
    try:
        group.main(args=argv, prog_name="stoker", standalone_mode=False)
    except click.exceptions.UsageError as e:
        e.show()
        sys.exit(ExitCode.USAGE)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.ERROR)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(ExitCode.USAGE)
    sys.exit(ExitCode.OK)


if __name__ == "__main__":
    main()
