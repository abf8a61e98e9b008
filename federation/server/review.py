"""The AdmissionReview v1 envelope: the request read with every field of the type we expect
(a ValueError, answered 400, names what is not), and the verdict written back.

Kept apart from the webhook so the one place that trusts nothing of the body is small: a
review may come from anyone who reaches the port, so the walk of its JSON is paced by the
review's `Meter` and bounded in depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from federation.validation import Meter

ADMISSION_API_VERSION = "admission.k8s.io/v1"


@dataclass
class Verdict:
    """The answer to one AdmissionRequest."""

    allowed: bool
    message: str = ""
    code: int = 200
    warnings: list[str] = field(default_factory=list)

    def response(self, uid: str) -> dict[str, Any]:
        out: dict[str, Any] = {"uid": uid, "allowed": self.allowed}
        if not self.allowed:
            reason = "Invalid" if self.code == 422 else "BadRequest"
            out["status"] = {"code": self.code, "reason": reason, "message": self.message}
        if self.warnings:
            out["warnings"] = self.warnings
        return out


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of an AdmissionReview's ``request`` we read, each of the type we expect."""

    uid: str
    operation: str
    group: str
    version: str
    kind: str
    sub_resource: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None

    @property
    def deleting(self) -> bool:
        meta = (self.object or {}).get("metadata")
        return isinstance(meta, Mapping) and bool(meta.get("deletionTimestamp"))


def _too_deep(value: Any, limit: int, meter: Meter) -> bool:
    """Whether JSON ``value`` nests deeper than ``limit`` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        meter.spend()
        current, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(current, Mapping):
            stack.extend((v, depth + 1) for v in current.values() if isinstance(v, Mapping | list))
        elif isinstance(current, list):
            stack.extend((v, depth + 1) for v in current if isinstance(v, Mapping | list))
    return False


def _text(request: Mapping[str, Any], name: str, *, where: str = "request") -> str:
    value = request.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where}.{name} must be a string, not {type(value).__name__}")
    return value


def _object(request: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = request.get(name)
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"request.{name} must be an object or null, not {type(value).__name__}")
    return value


def read_request(review: Any, *, max_depth: int = 100, meter: Meter | None = None) -> AdmissionRequest:
    """The request of an AdmissionReview v1; ValueError (answered 400) naming what is wrong.
    ``meter`` paces the walk of a large review (see `Meter.check`)."""
    if not isinstance(review, Mapping) or review.get("kind") != "AdmissionReview":
        raise ValueError("expected an AdmissionReview")
    if review.get("apiVersion") != ADMISSION_API_VERSION:
        raise ValueError(f"expected apiVersion {ADMISSION_API_VERSION}, got {review.get('apiVersion')!r}")
    request = review.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise ValueError("the AdmissionReview has no request.uid (a string)")
    if len(request["uid"]) > 256:
        raise ValueError("request.uid is longer than 256 characters")
    gvk = request.get("kind")
    if gvk is None:
        gvk = {}
    if not isinstance(gvk, Mapping):
        raise ValueError(f"request.kind must be an object {{group, version, kind}}, not {type(gvk).__name__}")
    if _too_deep(review, max_depth, meter or Meter()):
        raise ValueError(f"the AdmissionReview nests deeper than {max_depth} levels")
    return AdmissionRequest(
        uid=request["uid"],
        operation=_text(request, "operation"),
        group=_text(gvk, "group", where="request.kind"),
        version=_text(gvk, "version", where="request.kind"),
        kind=_text(gvk, "kind", where="request.kind"),
        sub_resource=_text(request, "subResource"),
        object=_object(request, "object"),
        old_object=_object(request, "oldObject"),
    )


def decode_review(body: bytes, *, max_depth: int = 100, meter: Meter | None = None) -> AdmissionRequest:
    try:
        review = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"expected an AdmissionReview (JSON): {exc}") from None
    return read_request(review, max_depth=max_depth, meter=meter)
