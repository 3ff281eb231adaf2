"""`stoker validate`: check GatewaySync manifests the way the API server and controller would."""

from __future__ import annotations

import json
import sys

import click

from stoker_agent.commands.common import output_option, reporting_errors
from stoker_agent.documents import read_documents
from stoker_core.errors import ExitCode, InvalidInput, Problem
from stoker_core.validation import load


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_option
@reporting_errors
def validate(files: tuple[str, ...], output: str) -> None:
    """Check every GatewaySync in FILES; other documents are noted and ignored."""
    results: list[dict[str, object]] = []
    failed = False
    for path in files:
        try:
            documents = read_documents(path)
        except InvalidInput as e:
            failed = True
            results.append(_result(path, None, "", e.problems))
            continue
        for doc in documents:
            if not doc.is_gatewaysync:
                kind = doc.data.get("kind", "?") if isinstance(doc.data, dict) else "?"
                results.append({"file": path, "document": doc.index + 1, "ignored": str(kind)})
                continue
            try:
                load(doc.data)
                problems: tuple[Problem, ...] = ()
            except InvalidInput as e:
                problems = tuple(e.problems)
                failed = True
            results.append(_result(path, doc.index, doc.name, problems))
    if output == "json":
        click.echo(
            json.dumps({"schemaVersion": 1, "valid": not failed, "documents": results}, indent=2)
        )
    else:
        _print_text(results)
    sys.exit(ExitCode.ERROR if failed else ExitCode.OK)


def _result(
    path: str, index: int | None, name: str, problems: tuple[Problem, ...] | object
) -> dict[str, object]:
    listed = [p.to_json() for p in problems] if isinstance(problems, tuple | list) else []
    out: dict[str, object] = {"file": path, "name": name, "valid": not listed, "errors": listed}
    if index is not None:
        out["document"] = index + 1
    return out


def _print_text(results: list[dict[str, object]]) -> None:
    for result in results:
        where = f"{result['file']}" + (
            f" (document {result['document']})" if "document" in result else ""
        )
        if "ignored" in result:
            click.echo(f"note: {where}: kind {result['ignored']} is not a GatewaySync; ignored")
        elif result["valid"]:
            click.echo(click.style("valid", fg="green") + f"   {where}: {result['name']}")
        else:
            click.echo(click.style("invalid", fg="red") + f" {where}: {result['name']}")
            for error in result["errors"]:  # type: ignore[attr-defined]
                field = error.get("field") or error.get("path") or ""
                click.echo(f"error: {where}: {field}: {error['message']}", err=True)
