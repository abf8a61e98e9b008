"""What a propagator keeps of its copies in the member's informer cache.

A member copy is read for three things, and each needs less than the whole object:
- **drift** (`federation.propagate.drift`): the live values at exactly the paths the desired
  manifest sets, plus our hash annotation; the desired manifest never sets what the translator
  prunes (`federation.translate.prune`: server-set metadata, ownerReferences, finalizers, and
  the last-applied-configuration and deployment revision annotations);
- **conflict and ownership** (`federation.propagate.applier`): our ownership label and
  annotations, uid (a deletion's precondition), resourceVersion;
- **status** (`federation.status.collect`, `health`, `aggregate`): `status`, `spec.replicas`,
  `metadata.generation`.

So the cache drops what none of them reads and what the desired manifest cannot set. Nothing
reads managedFields: who owns a field is not needed to tell drift (the projection compares
values; the hub wins by a forced apply whoever the manager is) nor a conflict (our label says
whose the object is). The rest of the object stays: which spec paths the desired sets is known
per work, not per kind, and a projection cached for one version of a work would be wrong for
the next. What stays is made smaller by sharing: the copies of one template in one member
repeat most of their values, and each short string is held once (`share_strings`).
"""

from __future__ import annotations

from federation.informers.transform import share_strings
from federation.kube.resources import Obj
from federation.translate.prune import HUB_ONLY_ANNOTATIONS

#: Metadata no reader of a member copy looks at and the desired manifest never sets.
_DROPPED_METADATA = ("managedFields", "ownerReferences", "finalizers", "selfLink")


def member_copy(obj: Obj) -> Obj:
    """The informer transform of a propagator's member watches: the copy, trimmed in place."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return obj
    for name in _DROPPED_METADATA:
        meta.pop(name, None)
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        for name in HUB_ONLY_ANNOTATIONS:
            annotations.pop(name, None)
    return share_strings(obj)
