"""Webhook certificates without cert-manager: the first webhook replica creates a CA and a
serving certificate in a Secret (create-if-absent, so every replica serves the same one) and
writes the CA into the webhook configurations' caBundle. Keys live only in that Secret and the
pod's memory-backed /tmp; they are never rendered into YAML."""

from __future__ import annotations

import base64
import datetime as dt
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 3650


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue(service: str, namespace: str) -> dict[str, bytes]:
    """A CA and a serving certificate for `service.namespace.svc`: ca.crt, tls.crt, tls.key."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stoker-webhook-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local", service]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return {
        "ca.crt": ca.public_bytes(pem),
        "tls.crt": cert.public_bytes(pem),
        "tls.key": _pem_key(key),
    }


def ensure(
    core: Any,
    admission: Any,
    *,
    namespace: str,
    secret: str,
    service: str,
    mutating: list[str],
    validating: list[str],
    directory: str,
) -> tuple[str, str]:
    """Make sure the Secret exists (creating it once), write cert and key under `directory`,
    patch the caBundle of the named webhook configurations; return (cert file, key file)."""
    from kubernetes.client.exceptions import ApiException

    try:
        data = {
            k: base64.b64decode(v)
            for k, v in (core.read_namespaced_secret(secret, namespace).data or {}).items()
        }
    except ApiException as e:
        if e.status != 404:
            raise
        data = issue(service, namespace)
        body = {
            "metadata": {"name": secret, "labels": {"app.kubernetes.io/managed-by": "stoker"}},
            "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        try:
            core.create_namespaced_secret(namespace, body)
        except ApiException as race:
            if race.status != 409:
                raise
            data = {
                k: base64.b64decode(v)
                for k, v in (core.read_namespaced_secret(secret, namespace).data or {}).items()
            }
    bundle = base64.b64encode(data["ca.crt"]).decode()
    for names, read, patch in (
        (
            mutating,
            admission.read_mutating_webhook_configuration,
            admission.patch_mutating_webhook_configuration,
        ),
        (
            validating,
            admission.read_validating_webhook_configuration,
            admission.patch_validating_webhook_configuration,
        ),
    ):
        for name in names:
            current = read(name)
            hooks = [
                {"name": w.name, "clientConfig": {"caBundle": bundle}}
                for w in current.webhooks or []
            ]
            patch(name, {"webhooks": hooks})
    os.makedirs(directory, exist_ok=True)
    cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
    with open(cert, "wb") as handle:
        handle.write(data["tls.crt"])
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data["tls.key"])
    return cert, key
