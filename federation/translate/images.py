"""Container image references split into registry, repository, tag and digest.

Follows the docker reference grammar closely enough for overrides: the first path component
is a registry when it contains a '.' or ':' or is ``localhost``; a tag follows the last ':'
after the last '/'; a digest follows '@'. Docker Hub's implicit registry is left implicit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from federation.api import ImageComponent, ImageOperator

_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?$")


class ImageRefError(ValueError):
    """Not a valid image reference, or an override that would make one invalid."""


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str
    digest: str

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_image(image: str) -> ImageRef:
    if not image or image != image.strip():
        raise ImageRefError(f"{image!r} is not an image reference")
    rest, _, digest = image.partition("@")
    registry = ""
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    repository, tag = rest, ""
    if ":" in rest.rsplit("/", 1)[-1]:
        repository, _, tag = rest.rpartition(":")
    ref = ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)
    _check(ref, image)
    return ref


def _check(ref: ImageRef, original: str) -> None:
    if not _REPOSITORY.match(ref.repository):
        raise ImageRefError(f"{original!r}: repository {ref.repository!r} is not valid")
    if ref.tag and not _TAG.match(ref.tag):
        raise ImageRefError(f"{original!r}: tag {ref.tag!r} is not valid")
    if ref.digest and not _DIGEST.match(ref.digest):
        raise ImageRefError(f"{original!r}: digest {ref.digest!r} is not valid (like sha256:<hex>)")
    if ref.registry and not _REGISTRY.match(ref.registry):
        raise ImageRefError(f"{original!r}: registry {ref.registry!r} is not valid")


def override_image(image: str, *, component: ImageComponent, operator: ImageOperator, value: str) -> str:
    """``image`` with one component replaced or removed; ImageRefError if the result is invalid."""
    ref = parse_image(image)
    new_value = value if operator is ImageOperator.REPLACE else ""
    if component is ImageComponent.REPOSITORY and not new_value:
        raise ImageRefError("the repository of an image cannot be removed")
    updated = replace(ref, **{component.value: new_value})  # the enum values are ImageRef's field names
    _check(updated, str(updated))
    return str(updated)
