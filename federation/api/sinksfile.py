"""The event sinks file: where the controller sends the fleet's changes, as CloudEvents.

``federation run --event-sinks FILE``. A section of the controller's own configuration, not a
CRD on the hub, on purpose: a sink is a place the fleet's every change is sent to, so whoever
can create one can read the whole fleet's activity (and point it at any URL). The controller's
configuration is the fleet admin's alone by construction — it is their deployment — whereas a
hub kind would need RBAC to keep tenants from making one, and a mistake there is an
exfiltration channel. Credentials a sink needs are read from files or the environment named
here, never written in it. See ``examples/event-sinks.yaml`` for every field.

    sinks:
      - name: audit
        filter: {types: [CopyApplied, DriftCorrected], clusters: ["eu-*"]}
        http: {url: "https://audit.example.com/fleet", mode: structured}
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from federation.api.base import KubeModel
from federation.api.documents import parse_document
from federation.api.rollout import Duration
from federation.api.yamlsource import read_yaml_file
from federation.errors import ConfigError, InvalidObjectError

SINK_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class SinkFilter(KubeModel):
    """Every list optional (empty: anything); a change passes when it matches every list given."""

    types: tuple[str, ...] = Field(default=(), max_length=100, description="Change types, e.g. CopyApplied.")
    namespaces: tuple[str, ...] = Field(default=(), max_length=1000)
    kinds: tuple[str, ...] = Field(default=(), max_length=100)
    clusters: tuple[str, ...] = Field(default=(), max_length=1000, description="Globs: eu-*, member-?.")


class HttpMode(StrEnum):
    STRUCTURED = "structured"
    """One POST per event, ``Content-Type: application/cloudevents+json`` (a Knative broker)."""
    BATCH = "batch"
    """One POST per batch, ``application/cloudevents-batch+json``."""


class HttpSink(KubeModel):
    url: str = Field(pattern=r"^https?://", max_length=2048)
    mode: HttpMode = HttpMode.STRUCTURED
    timeout: Duration = "10s"
    bearer_token_file: Path | None = Field(
        default=None, description="A file whose content is sent as `Authorization: Bearer …`."
    )
    ca_file: Path | None = Field(default=None, description="CA bundle to verify an https URL with.")


class NatsSink(KubeModel):
    """Publish to NATS JetStream: each event acknowledged by the stream before the next, with
    its id as ``Nats-Msg-Id`` (the stream drops a repeat within its duplicate window)."""

    url: str = Field(pattern=r"^(nats|tls)://", max_length=2048, description="nats://host:4222")
    subject: str = Field(min_length=1, max_length=255, pattern=r"^[^\s*>]+$")
    timeout: Duration = "5s"
    credentials_file: Path | None = Field(default=None, description="A NATS .creds file (JWT and seed).")


class KafkaSink(KubeModel):
    """Produce to a Kafka topic, the resource as the message key (so each resource's changes
    stay in one partition, in order), idempotently and acknowledged by all in-sync replicas."""

    bootstrap_servers: tuple[str, ...] = Field(
        min_length=1, max_length=20, description="host:port of brokers."
    )
    topic: str = Field(min_length=1, max_length=249, pattern=r"^[a-zA-Z0-9._-]+$")
    timeout: Duration = "10s"


#: The most changes a sink delivers at once (what a NATS sink keeps unacknowledged).
MAX_BATCH = 5000


class Start(StrEnum):
    NOW = "now"
    """A new sink gets the changes from its first start on."""
    OLDEST = "oldest"
    """A new sink gets every change the log still holds first."""


class SinkEntry(KubeModel):
    name: str = Field(min_length=1, max_length=63, pattern=SINK_NAME)
    filter: SinkFilter = Field(default_factory=SinkFilter)
    http: HttpSink | None = None
    nats: NatsSink | None = None
    kafka: KafkaSink | None = None
    batch_size: int = Field(default=100, ge=1, le=MAX_BATCH)
    start: Start = Start.NOW

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("http", "nats", "kafka") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give the sink's destination: exactly one of http, nats, kafka")
        return self


class SinksFile(KubeModel):
    sinks: tuple[SinkEntry, ...] = Field(min_length=1, max_length=50)


def load_sinks_file(path: Path) -> list[SinkEntry]:
    """The sinks of ``path``; relative file paths resolved against its directory. Malformed YAML,
    unknown fields, bad values and duplicate names raise with ``file:line`` and the field."""
    docs = read_yaml_file(path)
    if len(docs) != 1:
        raise ConfigError(f"{path}: expected one YAML document with a `sinks:` list, found {len(docs)}")
    doc = docs[0]
    parsed = parse_document(SinksFile, doc, what="event sinks file")
    seen: dict[str, int] = {}
    out = []
    for i, entry in enumerate(parsed.sinks):
        if entry.name in seen:
            raise InvalidObjectError(
                f"{doc.where(('sinks', i, 'name'))}: event sinks file: sinks[{i}].name: "
                f"duplicate sink name {entry.name!r} (also sinks[{seen[entry.name]}])"
            )
        seen[entry.name] = i
        nats = entry.nats
        if nats is not None and nats.credentials_file is not None:
            creds = _resolve(path, nats.credentials_file)
            if creds is None or not creds.is_file():
                raise ConfigError(f"{path}: sinks[{i}].nats.credentialsFile: no such file: {creds}")
            entry = entry.model_copy(update={"nats": nats.model_copy(update={"credentials_file": creds})})
        http = entry.http
        if http is not None:
            files = {
                "bearer_token_file": _resolve(path, http.bearer_token_file),
                "ca_file": _resolve(path, http.ca_file),
            }
            for field, value in files.items():
                if value is not None and not value.is_file():
                    raise ConfigError(f"{path}: sinks[{i}].http.{_camel(field)}: no such file: {value}")
            entry = entry.model_copy(update={"http": http.model_copy(update=files)})
        out.append(entry)
    return out


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = Path(os.path.expanduser(value))
    return value if value.is_absolute() else base.parent / value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)
