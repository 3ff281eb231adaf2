"""The key that signs approval stamps (issue 17, docs/rollouts.md "Approvals"), kept in the
Secret `stoker-approval-key` in Stoker's own namespace: the webhook creates it at start-up if it
is missing (create-if-absent, so every replica signs with the same key) and the controller reads
it. The key never leaves that Secret and the two processes' memory."""

from __future__ import annotations

import base64
import os
import secrets
from typing import Any

from stoker_core.approvals import KEY_SECRET, KEY_SECRET_ENV

FIELD = "key"  # the Secret's data field
KEY_BYTES = 32  # HMAC-SHA256's block-size-safe key length


def ensure(core: Any, namespace: str, name: str = KEY_SECRET) -> bytes:
    """The key from Secret `name`, created with a fresh random key if absent."""
    from kubernetes.client.exceptions import ApiException

    try:
        return _key_of(core.read_namespaced_secret(name, namespace), name)
    except ApiException as e:
        if e.status != 404:
            raise
    body = {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "stoker"}},
        "type": "Opaque",
        "data": {FIELD: base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()},
    }
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as race:
        if race.status != 409:  # another replica made it first: use theirs
            raise
    return _key_of(core.read_namespaced_secret(name, namespace), name)


def read(core: Any, namespace: str, name: str = "") -> bytes:
    """The key, or b"" when the Secret cannot be read (nothing verifies then: the controller
    says so in its condition rather than counting approvals it cannot check). Without `name`,
    the Secret the chart names in STOKER_APPROVAL_KEY_SECRET, else `stoker-approval-key`."""
    from kubernetes.client.exceptions import ApiException

    name = name or os.environ.get(KEY_SECRET_ENV) or KEY_SECRET

    try:
        return _key_of(core.read_namespaced_secret(name, namespace), name)
    except (ApiException, ValueError):
        return b""


def _key_of(secret: Any, name: str) -> bytes:
    data = getattr(secret, "data", None) or {}
    key = base64.b64decode(data.get(FIELD, ""))
    if len(key) < KEY_BYTES // 2:
        raise ValueError(f"Secret {name} has no key of at least 16 bytes in data.{FIELD}")
    return key
