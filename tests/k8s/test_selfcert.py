"""Webhook certificates without cert-manager: one Secret shared by every replica, the CA written
into the webhook configurations, the key only in that Secret and a 0600 file."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client

from stoker_k8s.selfcert import ensure

pytestmark = pytest.mark.kube


def test_replicas_share_one_certificate_and_the_ca_reaches_the_webhooks(
    kube_api: client.ApiClient, kube_core: client.CoreV1Api, kube_namespace: str, tmp_path: Path
) -> None:
    adm = client.AdmissionregistrationV1Api(kube_api)
    name = f"selfcert-{kube_namespace}"
    hook = {
        "name": "pod-inject.stoker.io",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "clientConfig": {"service": {"name": "stoker-webhook", "namespace": kube_namespace}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": kube_namespace}},
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
            }
        ],
    }
    adm.create_mutating_webhook_configuration({"metadata": {"name": name}, "webhooks": [hook]})
    try:
        first = ensure(
            kube_core,
            adm,
            namespace=kube_namespace,
            secret="stoker-webhook-tls",
            service="stoker-webhook",
            mutating=[name],
            validating=[],
            directory=str(tmp_path / "a"),
        )
        second = ensure(
            kube_core,
            adm,
            namespace=kube_namespace,
            secret="stoker-webhook-tls",
            service="stoker-webhook",
            mutating=[name],
            validating=[],
            directory=str(tmp_path / "b"),
        )
        assert Path(first[0]).read_bytes() == Path(second[0]).read_bytes()  # one certificate
        assert os.stat(first[1]).st_mode & 0o777 == 0o600
        stored = kube_core.read_namespaced_secret("stoker-webhook-tls", kube_namespace).data
        bundle = adm.read_mutating_webhook_configuration(name).webhooks[0].client_config.ca_bundle
        assert bundle == stored["ca.crt"]
        cert = x509.load_pem_x509_certificate(Path(first[0]).read_bytes())
        ca = x509.load_pem_x509_certificate(base64.b64decode(stored["ca.crt"]))
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"stoker-webhook.{kube_namespace}.svc" in names.get_values_for_type(x509.DNSName)
    finally:
        adm.delete_mutating_webhook_configuration(name)
