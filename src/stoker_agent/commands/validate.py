"""`stoker validate`: check GatewaySync manifests the way the API server and controller would."""

from __future__ import annotations

import sys

import click

from stoker_agent.commands.common import emit, one_line, output_option, reporting_errors
from stoker_agent.documents import Document, read_documents, shown
from stoker_core import takeovers
from stoker_core.errors import ExitCode, InvalidInput, Problem
from stoker_core.kinds import Verdict, classify
from stoker_core.validation import load

Result = dict[str, object]


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@output_option
@reporting_errors
def validate(files: tuple[str, ...], output: str) -> None:
    """Check every GatewaySync in FILES (`-`: standard input); other kinds are noted and skipped.

    Fails on a file it cannot read or parse, an empty file, a misspelt or unknown stoker.io
    kind, and input holding no GatewaySync at all.
    """
    results: list[Result] = []
    quiet: list[str] = []  # readable files that hold no GatewaySync
    for path in files:
        try:
            documents = read_documents(path)
        except InvalidInput as e:
            results.append(_result(path, None, "", e.problems))
            continue
        if not documents:
            problem = Problem(message="is empty; expected a GatewaySync manifest", path=shown(path))
            results.append(_result(path, None, "", [problem]))
            continue
        checked = [_check(doc) for doc in documents]
        results.extend(checked)
        if all("ignored" in r for r in checked):
            quiet.append(path)
    if not any("ignored" not in r for r in results):
        for path in quiet:  # nothing at all to validate: say so for each file
            problem = Problem(message="holds no GatewaySync, only other kinds", path=shown(path))
            results.append(_result(path, None, "", [problem]))
    valid = all(r.get("valid", True) for r in results)
    if output == "text":
        _print_text(results)
    else:
        emit({"schemaVersion": 1, "valid": valid, "documents": results}, output)
    sys.exit(ExitCode.OK if valid else ExitCode.ERROR)


def _check(doc: Document) -> Result:
    kind = classify(doc.data)
    if kind.verdict is Verdict.OTHER:
        return {"file": shown(doc.file), "document": doc.index + 1, "ignored": kind.kind}
    if kind.verdict is Verdict.WRONG:
        return _result(doc.file, doc.index, doc.name, [Problem(field="kind", message=kind.problem)])
    try:
        gs = load(doc.data)
    except InvalidInput as e:
        return _result(doc.file, doc.index, doc.name, e.problems)
    result = _result(doc.file, doc.index, doc.name, ())
    result["warnings"] = [t.to_json() for t in takeovers.in_profiles(gs.spec.sync)]
    return result


def _result(path: str, index: int | None, name: str, problems: object) -> Result:
    listed = [p.to_json() for p in problems] if isinstance(problems, tuple | list) else []
    out: Result = {"file": shown(path), "name": name, "valid": not listed, "errors": listed}
    if index is not None:
        out["document"] = index + 1
    return out


def _print_text(results: list[Result]) -> None:
    for result in results:
        where = one_line(f"{result['file']}") + (
            f" (document {result['document']})" if "document" in result else ""
        )
        name = one_line(str(result.get("name", "")))
        if "ignored" in result:
            kind = one_line(str(result["ignored"]))
            click.echo(f"note: {where}: kind {kind} is not a GatewaySync; skipped")
        elif result["valid"]:
            click.echo(click.style("valid", fg="green") + f"   {where}: {name}")
            for warning in result.get("warnings", ()):  # type: ignore[attr-defined]
                click.echo(one_line(f"warning: {where}: {warning['message']}"), err=True)
        else:
            click.echo(click.style("invalid", fg="red") + f" {where}: {name}")
            for error in result["errors"]:  # type: ignore[attr-defined]
                field = error.get("field")
                prefix = f"{where}: {field}" if field else where
                click.echo(one_line(f"error: {prefix}: {error['message']}"), err=True)
