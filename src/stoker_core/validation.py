"""Checks on a structurally valid GatewaySync that types alone cannot express.

Every problem is returned at once, each naming its field and saying how to fix it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from stoker_core import bounds, model
from stoker_core.durations import parse_duration
from stoker_core.errors import InvalidInput, Problem
from stoker_core.globs import BadPattern
from stoker_core.globs import check as check_glob
from stoker_core.parsing import structure
from stoker_core.paths import PathEscape, normalize
from stoker_core.refs import ref_problem
from stoker_core.vocabulary import API_GROUP, API_VERSION, KIND

IDENTIFIER = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
API = f"{API_GROUP}/{API_VERSION}"


def load(data: object, *, lenient: bool = False) -> model.GatewaySync:
    """Build and check a GatewaySync from plain data; raise InvalidInput with every problem.

    `lenient` ignores fields this release does not know: for objects the API server has
    already accepted under a newer CRD (an upgrade in progress), never for a user's file."""
    if isinstance(data, dict):
        header = list(_check_header(data))
        if header:
            raise InvalidInput(header)
    try:
        gs = structure(data, model.GatewaySync, lenient=lenient)
    except InvalidInput as e:
        raise InvalidInput([*e.problems, *_check_parts(data)]) from None
    problems = list(check(gs))
    if problems:
        raise InvalidInput(problems)
    return gs


def _check_header(data: dict[str, object]) -> Iterator[Problem]:
    if data.get("apiVersion") != API:
        yield Problem(
            field="apiVersion", message=f'must be "{API}", got {data.get("apiVersion")!r}'
        )
    if data.get("kind") != KIND:
        yield Problem(field="kind", message=f'must be "{KIND}", got {data.get("kind")!r}')


def _part(data: object, *keys: str) -> object:
    for k in keys:
        data = data.get(k) if isinstance(data, dict) else None
    return data


def _check_parts(data: object) -> Iterator[Problem]:
    """After a structural failure, still check every part that is well-formed on its own."""
    parts: list[tuple[object, type, Callable[[Any], Iterator[Problem]]]] = [
        (_part(data, "spec", "git"), model.GitSpec, _check_git),
        (_part(data, "spec", "polling"), model.Polling, _check_polling),
        (_part(data, "spec", "sync", "defaults"), model.Defaults, _check_defaults),
    ]
    profiles = _part(data, "spec", "sync", "profiles")
    for name, raw in profiles.items() if isinstance(profiles, dict) else ():
        if len(str(name)) > model.MAX_IDENTIFIER:
            continue
        base = f"spec.sync.profiles.{name}"
        if _structures(raw, model.Profile):
            parts.append((raw, model.Profile, functools.partial(_check_profile, base, name)))
            continue
        mappings = _part(raw, "mappings")
        for i, mapping in enumerate(mappings if isinstance(mappings, list) else ()):
            where = f"{base}.mappings[{i}]"
            parts.append((mapping, model.Mapping, functools.partial(_check_mapping, where)))
    names = profiles if isinstance(profiles, dict) else {}
    check_rollout = functools.partial(_rollout_problems, profiles=names)
    parts.append((_part(data, "spec", "rollout"), model.Rollout, check_rollout))
    for raw, cls, checker in parts:
        if raw is not None and _structures(raw, cls):
            yield from checker(structure(raw, cls))


def _rollout_problems(rollout: model.Rollout, profiles: Mapping[str, object]) -> Iterator[Problem]:
    """stoker_core.waves' checks, imported with a rollout only: most GatewaySyncs have none,
    and a sync starts faster without it (issue 18)."""
    from stoker_core import waves

    return waves.problems(rollout, profiles)


def _structures(raw: object, cls: type) -> bool:
    try:
        structure(raw, cls)
    except InvalidInput:
        return False
    return True


def check(gs: model.GatewaySync) -> Iterator[Problem]:
    """Yield every semantic problem in a GatewaySync; a field over its size bound (the CRD's
    maxLength, maxItems, maxProperties) gets that problem alone."""
    bounded = list(bounds.problems(gs.spec, "spec"))
    yield from bounded
    over = {p.field for p in bounded}
    yield from (p for p in _semantics(gs) if p.field not in over)


def _semantics(gs: model.GatewaySync) -> Iterator[Problem]:
    if not gs.metadata.name:
        yield Problem(field="metadata.name", message="is required; name the GatewaySync")
    spec = gs.spec
    yield from _check_git(spec.git)
    yield from _check_polling(spec.polling)
    if not 1 <= spec.gateway.port <= 65535:
        yield Problem(
            field="spec.gateway.port", message=f"must be 1-65535, got {spec.gateway.port}"
        )
    yield from _nonempty("spec.gateway.api.secretName", spec.gateway.api.secret_name)
    yield from _check_defaults(spec.sync.defaults)
    if not spec.sync.profiles:
        yield Problem(
            field="spec.sync.profiles", message="needs at least one profile, e.g. default"
        )
    for name, profile in spec.sync.profiles.items():
        if len(name) > model.MAX_IDENTIFIER:
            continue  # named by its bound's problem; checked once it has a usable name
        yield from _check_profile(f"spec.sync.profiles.{name}", name, profile)
    if spec.rollout is not None:
        yield from _rollout_problems(spec.rollout, spec.sync.profiles)
    limit = spec.history_limit
    if limit is not None and not 1 <= limit <= model.MAX_HISTORY:
        yield Problem(
            field="spec.historyLimit",
            message=f"must be 1-{model.MAX_HISTORY} entries, got {limit}",
        )


def _nonempty(field: str, value: str) -> Iterator[Problem]:
    if not value.strip():
        yield Problem(field=field, message="must not be empty")


def _git_word(field: str, value: str, what: str) -> Iterator[Problem]:
    """A repository or ref reaches git's command line: it must not read as an option."""
    if not value.strip():
        yield Problem(field=field, message="must not be empty")
    elif re.fullmatch(model.GIT_WORD, value) is None or not value.isprintable():  # as the CRD
        yield Problem(
            field=field,
            message=f"must be {what}, without spaces or control characters and not starting "
            'with "-"',
        )


def _check_git(git: model.GitSpec) -> Iterator[Problem]:
    yield from _git_word(
        "spec.git.repo", git.repo, "a repository URL (https://, ssh://, git@host:path) or a path"
    )
    problem = ref_problem(git.ref)  # the same rule as a ref requested through the receiver
    if problem:
        yield Problem(field="spec.git.ref", message=problem)
    if git.auth is None:
        return
    methods = git.auth.methods()
    if len(methods) > 1:
        yield Problem(
            field="spec.git.auth",
            message=f"sets {' and '.join(methods)}; set exactly one authentication method",
        )
    refs: list[tuple[str, model.SecretKeyRef]] = []
    if git.auth.ssh_key:
        refs.append(("sshKey.secretRef", git.auth.ssh_key.secret_ref))
        if git.auth.ssh_key.known_hosts:
            refs.append(("sshKey.knownHosts.secretRef", git.auth.ssh_key.known_hosts.secret_ref))
    if git.auth.token:
        refs.append(("token.secretRef", git.auth.token.secret_ref))
    if git.auth.github_app:
        refs.append(("githubApp.privateKeySecretRef", git.auth.github_app.private_key_secret_ref))
    for where, ref in refs:
        yield from _nonempty(f"spec.git.auth.{where}.name", ref.name)
        yield from _nonempty(f"spec.git.auth.{where}.key", ref.key)


def _check_polling(polling: model.Polling) -> Iterator[Problem]:
    try:
        seconds = parse_duration(polling.interval)
    except ValueError as e:
        yield Problem(field="spec.polling.interval", message=str(e))
        return
    if seconds < 1:
        yield Problem(field="spec.polling.interval", message="must be at least 1s")


def _check_vars(field: str, values: dict[str, str]) -> Iterator[Problem]:
    for name in sorted(values):
        if len(name) > model.MAX_IDENTIFIER:
            continue  # named by its bound's problem
        if not IDENTIFIER.match(name):
            yield Problem(
                field=f"{field}.{name}",
                message=f'key "{name}" is not a valid identifier (use letters, digits, '
                "underscores only — dashes are not supported in template variable names)",
            )


def _check_sync_period(field: str, value: int | None) -> Iterator[Problem]:
    if value is not None and not 5 <= value <= 3600:
        yield Problem(field=field, message=f"must be 5-3600 seconds, got {value}")


def _check_globs(field: str, patterns: tuple[str, ...]) -> Iterator[Problem]:
    for i, pattern in enumerate(patterns):
        try:
            check_glob(pattern)
        except BadPattern as e:
            yield Problem(field=f"{field}[{i}]", message=str(e))


def _check_vars_from(
    base: str, values: dict[str, str], sources: tuple[model.VarFrom, ...]
) -> Iterator[Problem]:
    for i, source in enumerate(sources):
        where = f"{base}.varsFrom[{i}]"
        if not IDENTIFIER.match(source.name):
            yield Problem(
                field=f"{where}.name",
                message=f'"{source.name}" is not a valid '
                "identifier (use letters, digits, underscores only)",
            )
        if source.name in values:
            yield Problem(
                field=f"{where}.name",
                message=f'"{source.name}" is also set in vars; keep one of the two',
            )
        yield from _nonempty(f"{where}.secretKeyRef.name", source.secret_key_ref.name)
        yield from _nonempty(f"{where}.secretKeyRef.key", source.secret_key_ref.key)


def _check_defaults(defaults: model.Defaults) -> Iterator[Problem]:
    base = "spec.sync.defaults"
    yield from _check_vars(f"{base}.vars", defaults.vars)
    yield from _check_vars_from(base, defaults.vars, defaults.vars_from)
    yield from _check_sync_period(f"{base}.syncPeriod", defaults.sync_period)
    yield from _check_globs(f"{base}.excludePatterns", defaults.exclude_patterns)


def _check_profile(base: str, name: str, profile: model.Profile) -> Iterator[Problem]:
    if not _DNS_LABEL.match(name) and not IDENTIFIER.match(name):
        yield Problem(
            field=base, message=f'profile name "{name}" must be a DNS label, e.g. "site-a"'
        )
    yield from _check_vars(f"{base}.vars", profile.vars)
    yield from _check_vars_from(base, profile.vars, profile.vars_from)
    yield from _check_sync_period(f"{base}.syncPeriod", profile.sync_period)
    yield from _check_globs(f"{base}.excludePatterns", profile.exclude_patterns)
    if not profile.mappings:
        yield Problem(field=f"{base}.mappings", message="needs at least one mapping")
    for i, mapping in enumerate(profile.mappings):
        yield from _check_mapping(f"{base}.mappings[{i}]", mapping)


def _without_actions(value: str) -> str:
    """`value` with each `{{...}}` replaced by "x", in one pass (an unclosed "{{" stays)."""
    out: list[str] = []
    pos = 0
    while (start := value.find("{{", pos)) >= 0 and (end := value.find("}}", start + 2)) >= 0:
        out.append(value[pos:start] + "x")
        pos = end + 2
    out.append(value[pos:])
    return "".join(out)


def check_literal_path(field: str, value: str, *, what: str) -> Iterator[Problem]:
    """Check a (possibly templated) path; template parts are checked again after rendering."""
    if not value.strip():
        yield Problem(field=field, message="must not be empty")
        return
    if "{{" in value:
        value = _without_actions(value)
    try:
        normalize(value)
    except PathEscape as e:
        yield Problem(field=field, message=f"must be relative to the {what}: {e}")


def _check_mapping(base: str, mapping: model.Mapping) -> Iterator[Problem]:
    yield from check_literal_path(f"{base}.source", mapping.source, what="repository root")
    yield from check_literal_path(f"{base}.destination", mapping.destination, what="data directory")
    for j, patch in enumerate(mapping.patches):
        where = f"{base}.patches[{j}]"
        if not patch.set_:
            yield Problem(field=f"{where}.set", message="needs at least one path: value entry")
        if patch.file:
            yield from _check_globs(f"{where}.file", (patch.file,))
