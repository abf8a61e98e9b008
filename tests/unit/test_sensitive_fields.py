"""Sensitive fields: the one definition (Secrets' data, --sensitive-field), the keyed hashes of
manifests that hold one, and drift diffs that name the path but never show the value."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.api import Overriders
from federation.errors import ConfigError, OverrideError
from federation.placement import ClusterSnapshot
from federation.propagate import ABSENT, differences, project_object, projection_hash, redact_diff
from federation.propagate.drift import MAX_DIFF_STRING
from federation.translate import (
    DEFAULT_FIELDS,
    Ownership,
    ResolvedOverride,
    Secrecy,
    SensitiveFields,
    apply_override,
    content_hash,
    hub_id,
    translate,
)
from federation.translate.sensitive import (
    DIGEST_PREFIX,
    LAST_APPLIED_ANNOTATION,
    keyed_digest,
    parse,
    parse_all,
)

KEY = b"k" * 32
PASSWORD = "correct-horse-battery-staple"
B64 = base64.b64encode(PASSWORD.encode()).decode()


def secret(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def configmap(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "shop"},
        "data": data,
    }


def no_value(obj: Any) -> bool:
    text = orjson.dumps(obj).decode()
    return PASSWORD not in text and B64 not in text


# -- --sensitive-field ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "group", "kind", "pointer"),
    [
        ("ConfigMap:/data/password", "", "ConfigMap", "/data/password"),
        ("core/ConfigMap:/data/password", "", "ConfigMap", "/data/password"),
        (
            "apps/Deployment:/spec/template/spec/containers/*/env",
            "apps",
            "Deployment",
            "/spec/template/spec/containers/*/env",
        ),
        ("example.com/Gateway:/spec/auth/token", "example.com", "Gateway", "/spec/auth/token"),
        ("ConfigMap:/data/a~1b", "", "ConfigMap", "/data/a~1b"),
    ],
)
def test_a_sensitive_field_is_a_kind_and_a_pointer(text: str, group: str, kind: str, pointer: str) -> None:
    field = parse(text)
    assert (field.group, field.kind, field.pointer) == (group, kind, pointer)
    assert parse(str(field)) == field


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ConfigMap/data/password", "expected [GROUP/]KIND:POINTER"),
        ("ConfigMap:data/password", "is not a JSON pointer"),
        ("ConfigMap:/data/a~2", "'~' must be followed by 0 or 1"),
        ("Apps/Deployment:/spec", "is not an API group"),
        ("apps/:/spec", "is not a kind"),
        ("ConfigMap:/data//x", "has an empty token"),
        ("ConfigMap:/metadata", "would cover /metadata/name"),
        ("ConfigMap:/metadata/*", "would cover /metadata/name"),
        ("ConfigMap:/metadata/name", "would cover /metadata/name"),
        ("ConfigMap:/kind", "would cover /kind"),
        ("ConfigMap:/", "has an empty token"),
    ],
)
def test_a_bad_sensitive_field_is_refused_naming_the_flag(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="--sensitive-field") as err:
        parse(text)
    assert says in str(err.value) and repr(text) in str(err.value)


def test_the_env_var_takes_a_list_and_duplicates_count_once() -> None:
    fields = parse_all(["ConfigMap:/data/a apps/Deployment:/spec/x", "ConfigMap:/data/a,ConfigMap:/data/b"])
    assert [str(f) for f in fields] == ["ConfigMap:/data/a", "apps/Deployment:/spec/x", "ConfigMap:/data/b"]


def test_secrets_data_and_string_data_are_always_sensitive() -> None:
    s = {**secret(password=PASSWORD), "stringData": {"token": "t"}}
    assert DEFAULT_FIELDS.paths(s) == [("data",), ("stringData",)]
    assert DEFAULT_FIELDS.covers("", "Secret", ("data", "password"))
    assert not DEFAULT_FIELDS.covers("", "Secret", ("metadata", "name"))
    assert not DEFAULT_FIELDS.contains(configmap(password=PASSWORD)), "a ConfigMap only when marked"
    assert not DEFAULT_FIELDS.contains({**secret(), "data": None}), "no value, nothing sensitive"
    assert not DEFAULT_FIELDS.contains({"apiVersion": "example.com/v1", "kind": "Secret", "data": {"a": "b"}})


def test_marked_fields_with_wildcards_and_the_last_applied_copy() -> None:
    fields = SensitiveFields(
        extra=parse_all(["ConfigMap:/data/password", "apps/Deployment:/spec/template/spec/containers/*/env"])
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "other": "x"},
        },
        "spec": {
            "template": {"spec": {"containers": [{"name": "a", "env": []}, {"name": "b"}, {"env": [1]}]}}
        },
    }
    assert fields.paths(deployment) == [
        ("spec", "template", "spec", "containers", "0", "env"),
        ("spec", "template", "spec", "containers", "2", "env"),
        ("metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"),
    ]
    assert fields.paths(configmap(password=PASSWORD, user="u")) == [("data", "password")]
    assert fields.paths(configmap(user="u")) == []
    # kubectl's last-applied copy of a kind without sensitive fields is not sensitive.
    plain = {**deployment, "apiVersion": "batch/v1", "kind": "Job"}
    assert fields.paths(plain) == []


def last_applied(obj: dict[str, Any], copy: Any) -> dict[str, Any]:
    text = copy if isinstance(copy, str) else orjson.dumps(copy).decode()
    return {**obj, "metadata": {**obj["metadata"], "annotations": {LAST_APPLIED_ANNOTATION: text}}}


def test_kubectls_copy_is_sensitive_when_it_holds_a_sensitive_value() -> None:
    fields = SensitiveFields(extra=parse_all(["ConfigMap:/data/password"]))
    annotation = ("metadata", "annotations", LAST_APPLIED_ANNOTATION)
    # A ConfigMap kubectl applied without a password: nothing sensitive, not even the copy.
    assert fields.paths(last_applied(configmap(user="u"), configmap(user="u"))) == []
    # The live object lost its password (kubectl edit) but kubectl's copy still has it.
    assert fields.paths(last_applied(configmap(user="u"), configmap(password=PASSWORD))) == [annotation]
    assert fields.paths(last_applied(configmap(password=PASSWORD), configmap(password=PASSWORD))) == [
        ("data", "password"),
        annotation,
    ]
    # A copy that cannot be read is assumed to hold one.
    assert fields.paths(last_applied(configmap(user="u"), "{not json")) == [annotation]
    assert DEFAULT_FIELDS.paths(last_applied(secret(password=PASSWORD), secret(password=PASSWORD))) == [
        ("data",),
        annotation,
    ]


# -- keyed hashes ----------------------------------------------------------------------------


def test_a_keyed_content_hash_is_stable_keyed_and_not_the_plain_one() -> None:
    s = secret(password=PASSWORD)
    plain = content_hash(s)
    keyed = content_hash(s, key=KEY)
    assert keyed == content_hash(dict(reversed(list(s.items()))), key=KEY), "stable under key order"
    assert keyed != plain and len(keyed) == len(plain) == 32
    assert keyed != content_hash(s, key=b"x" * 32), "a different key, a different hash"
    # Without the key, a guess cannot be checked against it.
    assert hashlib.sha256(orjson.dumps(s, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32] == plain != keyed


def test_translate_keys_the_hash_only_of_manifests_holding_a_sensitive_value() -> None:
    secrecy = Secrecy(fields=DEFAULT_FIELDS, hash_key=KEY)
    cluster = ClusterSnapshot(name="eu-1")
    own = Ownership(hub=hub_id("hub"), policy="PropagationPolicy/shop/p")
    for template, keyed in ((secret(password=PASSWORD), True), (configmap(password=PASSWORD), False)):
        with_secrecy = translate(template, cluster=cluster, replicas=None, overrides=[], ownership=own,
                                 secrecy=secrecy)  # fmt: skip
        without = translate(template, cluster=cluster, replicas=None, overrides=[], ownership=own)
        assert with_secrecy.manifest == {
            **without.manifest,
            "metadata": {
                **without.manifest["metadata"],
                "annotations": {
                    **without.manifest["metadata"]["annotations"],
                    "federation.io/hash": with_secrecy.hash,
                },
            },
        }
        if keyed:
            assert with_secrecy.hash != without.hash
            assert with_secrecy.hash == content_hash(with_secrecy.manifest, key=KEY)
        else:
            assert with_secrecy.hash == without.hash, "other objects keep their hash: no re-apply"


def test_the_drift_baseline_of_a_secret_is_keyed() -> None:
    s = secret(password=PASSWORD)
    assert projection_hash(s, s, key=KEY) != projection_hash(s, s)
    assert projection_hash(s, s, key=KEY) == projection_hash(dict(s), s, key=KEY)
    edited = secret(password="other")
    assert projection_hash(edited, s, key=KEY) != projection_hash(s, s, key=KEY)


@given(st.text(max_size=40), st.text(max_size=40))
def test_keyed_digests_tell_equal_from_different_without_the_value(a: str, b: str) -> None:
    assert keyed_digest(a, KEY) == keyed_digest(a, KEY)
    assert (keyed_digest(a, KEY) == keyed_digest(b, KEY)) == (a == b)
    assert keyed_digest(a, KEY).startswith(DIGEST_PREFIX)


# -- drift diffs ----------------------------------------------------------------------------


def drift(desired: dict[str, Any], live: dict[str, Any], secrecy: Secrecy | None) -> list[dict[str, Any]]:
    return redact_diff(
        differences(project_object(desired, desired), project_object(live, desired)),
        desired=desired,
        secrecy=secrecy,
    )


def test_a_drifted_secret_value_is_shown_as_keyed_hashes_with_its_path() -> None:
    secrecy = Secrecy(fields=DEFAULT_FIELDS, hash_key=KEY)
    desired = secret(password=PASSWORD, user="app")
    live = secret(password="hunter2-but-longer", user="app")
    (entry,) = drift(desired, live, secrecy)
    assert entry == {
        "path": "/data/password",
        "hub": secrecy.digest(B64),
        "member": secrecy.digest(base64.b64encode(b"hunter2-but-longer").decode()),
        "sensitive": True,
    }
    assert no_value(entry) and "hunter2" not in orjson.dumps(entry).decode()


def test_string_data_and_whole_maps_are_hashed_too() -> None:
    secrecy = Secrecy(fields=DEFAULT_FIELDS, hash_key=KEY)
    desired = {**secret(password=PASSWORD), "stringData": {"token": PASSWORD}}
    # The member lost the whole data map: the hub side of that entry is a map holding the value.
    live = {**secret(), "stringData": {"token": "changed"}}
    live.pop("data")
    entries = drift(desired, live, secrecy)
    assert {e["path"] for e in entries} == {"/data", "/stringData/token"}
    for e in entries:
        assert e["sensitive"] is True and no_value(e)
    whole = next(e for e in entries if e["path"] == "/data")
    assert whole["member"] == ABSENT, "that a field is missing is not its value"
    assert whole["hub"] == secrecy.digest({"password": B64})


def test_a_diff_above_a_sensitive_field_hashes_only_what_is_inside_it() -> None:
    """An entry whose path is an ancestor (the member turned a map into a string): the side that
    holds the map shows it with the sensitive part hashed, the rest in the clear."""
    secrecy = Secrecy(fields=SensitiveFields(extra=parse_all(["example.com/Gateway:/spec/auth/token"])),
                      hash_key=KEY)  # fmt: skip
    desired = {"apiVersion": "example.com/v1", "kind": "Gateway", "metadata": {"name": "g"},
               "spec": {"auth": {"token": PASSWORD, "user": "svc"}, "port": 80}}  # fmt: skip
    live = {**desired, "spec": "broken"}
    (entry,) = drift(desired, live, secrecy)
    assert entry["path"] == "/spec"
    assert entry["hub"] == {"auth": {"token": secrecy.digest(PASSWORD), "user": "svc"}, "port": 80}
    assert entry["member"] == "broken" and entry["sensitive"] is True and no_value(entry)


def test_other_fields_stay_readable_and_unmarked() -> None:
    secrecy = Secrecy(fields=DEFAULT_FIELDS, hash_key=KEY)
    desired = {**secret(password=PASSWORD), "metadata": {"name": "db", "labels": {"tier": "db"}}}
    live = {**desired, "metadata": {"name": "db", "labels": {"tier": "cache"}}}
    assert drift(desired, live, secrecy) == [
        {"path": "/metadata/labels/tier", "hub": "db", "member": "cache"}
    ]


def test_without_secrecy_a_secret_is_still_hashed() -> None:
    (entry,) = drift(secret(password=PASSWORD), secret(password="other-value"), None)
    assert entry["hub"].startswith(DIGEST_PREFIX) and no_value(entry)


def test_member_values_are_bounded() -> None:
    desired = configmap(big="small")
    huge = "x" * 100_000
    live = configmap(big=huge)
    (entry,) = drift(desired, live, None)
    assert len(entry["member"]) < MAX_DIFF_STRING + 40 and entry["member"].endswith("(100000 characters)")
    wide = {**desired, "data": {"big": {f"k{i}": "v" * 50 for i in range(1000)}}}
    (entry,) = drift(desired, wide, None)
    assert entry["member"].startswith("<an object of 1000 keys") and "too large" in entry["member"]


# -- overrides never quote a sensitive value ------------------------------------------------


def test_a_failing_test_op_on_a_secret_does_not_quote_its_value() -> None:
    override = ResolvedOverride(
        policy="OverridePolicy shop/probe",
        rule_index=0,
        overriders=Overriders.model_validate(
            {"jsonPatch": [{"op": "test", "path": "/data/password", "value": "guess"}]}
        ),
    )
    with pytest.raises(OverrideError) as err:
        apply_override(secret(password=PASSWORD), override, cluster="eu-1")
    assert "/data/password is a sensitive field and differs (not shown)" in str(err.value)
    assert B64 not in str(err.value) and PASSWORD not in str(err.value)
    # Elsewhere the message still says what was found.
    override = ResolvedOverride(
        policy="OverridePolicy shop/probe",
        rule_index=0,
        overriders=Overriders.model_validate({"jsonPatch": [{"op": "test", "path": "/type", "value": "x"}]}),
    )
    with pytest.raises(OverrideError, match="test failed: /type is 'Opaque', not 'x'"):
        apply_override(secret(password=PASSWORD), override, cluster="eu-1")


def test_messages_are_scrubbed_of_sensitive_strings_in_every_spelling() -> None:
    fields = SensitiveFields(extra=parse_all(["example.com/Gateway:/spec/auth/token"]))
    gateway = {"apiVersion": "example.com/v1", "kind": "Gateway", "metadata": {"name": "g"},
               "spec": {"auth": {"token": 'to"ken-' + PASSWORD}, "port": "8080"}}  # fmt: skip
    # What an apiserver's schema check says (JSON-escaped), and what Python's repr says.
    message = (
        'Gateway.example.com "g" is invalid: spec.auth.token: Invalid value: "to\\"ken-' + PASSWORD + '": '
        "should match '^[a-z]+$'; also " + repr(gateway["spec"]["auth"]["token"]) + "; port 8080"
    )
    scrubbed = fields.scrub(message, gateway)
    assert PASSWORD not in scrubbed and "<sensitive value>" in scrubbed
    assert scrubbed.startswith('Gateway.example.com "g" is invalid: spec.auth.token: Invalid value:')
    assert scrubbed.endswith("port 8080"), "what is not sensitive stays"
    # A Secret's data: its base64 and the decoded value; kubectl's last-applied copy too.
    s = last_applied(secret(password=PASSWORD), secret(password="other-" + PASSWORD[:10]))
    text = f"bad {B64} and {PASSWORD} and other-{PASSWORD[:10]}"
    assert fields.scrub(text, s) == "bad <sensitive value> and <sensitive value> and <sensitive value>"
    assert fields.scrub("nothing here", s) == "nothing here"


def test_a_failing_image_override_pointed_at_a_secret_does_not_quote_it() -> None:
    override = ResolvedOverride(
        policy="ClusterOverridePolicy exfiltrate",
        rule_index=0,
        overriders=Overriders.model_validate(
            {"image": [{"component": "tag", "value": "x", "path": "/data/password"}]}
        ),
    )
    with pytest.raises(OverrideError) as err:
        apply_override(secret(password=PASSWORD), override, cluster="eu-1")
    assert "<sensitive value>" in str(err.value) and B64 not in str(err.value)
