"""The ValidatingWebhookConfiguration that makes the hub call `federation run`'s /validate
(`federation webhook config` prints it; deploy/webhook/ holds the in-cluster one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from federation.api import GROUP, KINDS, VERSION

WEBHOOK_NAME = "validate.federation.io"
"""The webhook's name in its configuration; apiservers quote it in every denial."""


def webhook_configuration(
    *,
    ca_bundle: str,
    url: str | None = None,
    service: tuple[str, str, int] | None = None,
    name: str = "federation-validating",
    failure_policy: str = "Ignore",
    timeout_seconds: int = 5,
    object_selector: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ValidatingWebhookConfiguration for our kinds, calling ``url`` or ``service``
    (namespace, name, port) at /validate; deploy/webhook/ holds the in-cluster one.

    ``failure_policy`` is Ignore by default: when no replica answers (all down, or slower than
    ``timeout_seconds``) the hub still admits policies, as it did before the webhook existed;
    the CRDs' schemas and CEL rules still guard everything structural, and the controller
    still reports what this would have refused. Tests use Fail, to see a refusal.
    """
    if (url is None) == (service is None):
        raise ValueError("give exactly one of url or service")
    client: dict[str, Any] = {"caBundle": ca_bundle}
    if url is not None:
        client["url"] = url
    elif service is not None:
        namespace, svc, port = service
        client["service"] = {"namespace": namespace, "name": svc, "path": "/validate", "port": port}
    hook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": failure_policy,
        "timeoutSeconds": timeout_seconds,
        "matchPolicy": "Equivalent",
        "clientConfig": client,
        "rules": [
            {
                "apiGroups": [GROUP],
                "apiVersions": [VERSION],
                "operations": ["CREATE", "UPDATE"],
                "resources": sorted(model.crd.plural for model in KINDS.values()),
                "scope": "*",
            }
        ],
    }
    if object_selector is not None:
        hook["objectSelector"] = dict(object_selector)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "federation"}},
        "webhooks": [hook],
    }
