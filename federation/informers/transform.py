"""What an informer keeps of each object: a transform applied before the object is cached.

As client-go's `SetTransform`: the reflector passes every object of a list and of every watch
event through the informer's transform before the store or any handler sees it, so what is
dropped here costs memory only for the moment between parsing and caching.

Every informer strips `metadata.managedFields` by default. It is the largest part of an object
written by server-side apply (a tree of `f:` keys mirroring every field each manager owns; in
Python each level is a dict), and no consumer of ours reads it: drift compares projections at
the desired paths (`federation.propagate.drift`), conflicts are told by our ownership label,
and a status PUT of a cached hub object without managedFields keeps the live ones (the
apiserver decodes the live object's managers when a request carries none). Consumers that
know more about what they read narrow further (`federation.propagate.cache`).

A transform may mutate its argument: the object was parsed for this informer alone and nobody
holds it yet. It must be cheap (it runs once per event) and must keep every field a handler,
an index or the store's resourceVersion comparison reads.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from federation.kube.resources import Obj

#: Longer strings are rarely shared between objects (and are not worth a lookup).
SHARED_STRING_MAX = 64

#: Maps a freshly parsed object to what the informer caches (the same dict, trimmed, is fine).
Transform = Callable[[Obj], Obj]


def strip_managed_fields(obj: Obj) -> Obj:
    """The default transform of every informer: the object without `metadata.managedFields`."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return obj


def keep_last_writer(obj: Obj) -> Obj:
    """`metadata.managedFields` cut to its last writer of the object itself: one entry with
    only ``manager``, ``operation`` and ``time`` (`last_writer` reads it).

    For the hub's informers: who last changed a template is what the change log tells the
    fleet's consumers (an event's ``by``), and the object records nothing else about it. Status
    writers (``subresource: status``, ours among them) are skipped: they did not change the
    template. The entry without ``fieldsV1`` costs a few dozen bytes; an object written back
    whole must leave it out (`federation.status.writer`), since a managedFields given in an
    update replaces the live one."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return obj
    entries = meta.pop("managedFields", None)
    last: dict[str, Any] | None = None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or entry.get("subresource"):
            continue
        if last is None or str(entry.get("time") or "") >= str(last.get("time") or ""):
            last = entry
    if last is not None:
        meta["managedFields"] = [{k: last[k] for k in ("manager", "operation", "time") if k in last}]
    return obj


def last_writer(obj: Obj) -> str | None:
    """The field manager that last changed `obj` (after `keep_last_writer`), with its operation
    when it is not an apply: ``kubectl-edit (Update)``, ``argocd-controller``."""
    entries = (obj.get("metadata") or {}).get("managedFields")
    if not entries:
        return None
    last = entries[-1]
    manager = last.get("manager")
    if not manager:
        return None
    operation = last.get("operation")
    return str(manager) if operation in (None, "Apply") else f"{manager} ({operation})"


def share_strings(obj: Obj) -> Obj:
    """`obj` with each short string value replaced, in place, by the one interned copy of it.

    The copies of one template in a member, and the templates of one application, repeat the
    same values (images, ports' names, resource quantities, probe paths, condition reasons and
    messages, timestamps of one rollout); orjson shares the keys but parses every value anew.
    Sharing them cuts a cached Deployment by about a quarter for a few percent more CPU per
    event (bench/informer.py). Values are compared equal either way, so readers see no change."""
    stack: list[Any] = [obj]
    intern = sys.intern
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, str):
                if len(value) <= SHARED_STRING_MAX:
                    node[key] = intern(value)
            elif isinstance(value, dict | list):
                stack.append(value)
    return obj


def keep_all(obj: Obj) -> Obj:
    """No transform: the whole object, for a consumer that reads managedFields (none today)."""
    return obj
