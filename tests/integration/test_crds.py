"""The generated CRDs on a real kube-apiserver: valid objects are accepted (with the schema's
defaults applied), invalid ones are refused with a message naming the field — the same field
the pydantic models name (tests/policy_cases.py is shared with the unit tests)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from federation.api import GROUP, KINDS, VERSION, is_federation_object
from federation.devfleet import HUB, LocalFleet
from tests.kubehelpers import api_client
from tests.policy_cases import INVALID, VALID, Case

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio


async def _create(fleet: LocalFleet, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    plural = KINDS[obj["kind"]].crd.plural
    async with api_client(fleet.clusters[HUB]) as api:
        custom = client.CustomObjectsApi(api)
        if KINDS[obj["kind"]].crd.scope == "Namespaced":
            created = await custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, obj)
        else:
            created = await custom.create_cluster_custom_object(GROUP, VERSION, plural, obj)
            await custom.delete_cluster_custom_object(GROUP, VERSION, plural, obj["metadata"]["name"])
        return created  # type: ignore[no-any-return]


def _prepared(case: Case, namespace: str) -> dict[str, Any]:
    obj = case.in_namespace(namespace)
    # Cluster-scoped names are shared by the whole apiserver: make them unique per run.
    obj["metadata"]["name"] = f"{obj['metadata']['name']}-{secrets.token_hex(4)}"
    return obj


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
async def test_valid_objects_are_accepted(
    case: Case, fleet: LocalFleet, hub_crds: None, namespace: str
) -> None:
    created = await _create(fleet, _prepared(case, namespace), namespace)
    assert created["kind"] == case.obj["kind"]
    if created["kind"] == "PropagationPolicy":
        # Schema defaults are applied by the apiserver, as the models default them.
        assert created["spec"]["priority"] == case.obj["spec"].get("priority", 0)
        assert created["spec"]["conflictResolution"] == case.obj["spec"].get("conflictResolution", "Abort")
        assert created["spec"]["deletionPolicy"] == case.obj["spec"].get("deletionPolicy", "Delete")
        assert created["spec"]["propagateDependencies"] is case.obj["spec"].get(
            "propagateDependencies", False
        )
        assert created["spec"]["suspend"] is case.obj["spec"].get("suspend", False)


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
async def test_invalid_objects_are_rejected_naming_the_field(
    case: Case, fleet: LocalFleet, hub_crds: None, namespace: str
) -> None:
    with pytest.raises(ApiException) as info:
        await _create(fleet, _prepared(case, namespace), namespace)
    assert info.value.status == 422, info.value.body
    assert case.field + ":" in info.value.body or case.field + " " in info.value.body, info.value.body


async def test_examples_are_accepted(fleet: LocalFleet, hub_crds: None, namespace: str) -> None:
    created = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and is_federation_object(doc):
                if KINDS[doc["kind"]].crd.scope == "Namespaced":
                    doc["metadata"]["namespace"] = namespace
                else:
                    doc["metadata"]["name"] += f"-{secrets.token_hex(4)}"
                created.append((await _create(fleet, doc, namespace))["kind"])
    assert sorted(set(created)) == [
        "ClusterOverridePolicy",
        "ClusterPropagationPolicy",
        "OverridePolicy",
        "PropagationPolicy",
    ]
