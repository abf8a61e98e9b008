"""The checks a policy must pass beyond its schema, judged from the policy (and what the hub
holds), before anything is translated: one implementation, used by the admission webhook and
by ``federation plan``, so both refuse the same policies in the same words.

The webhook (`federation.server.webhook`) keeps only the HTTP edge: the AdmissionReview, the
bounded reads of the hub, the worker threads. What refuses an object is decided here:

- `admission`: the entry points the webhook calls per kind (`parse`, `local_problems`,
  `override_findings` with its cap, `priority_conflicts`, the MemberCluster checks);
- `identity`: override rules that would change what a copy is (also run by ``federation plan``);
- `patchcheck`: JSON patches that fail on every template a selector can select, over
  `partial` (the partial document), `document` (the ops on it), `shapes` (the representative
  template of a kind) and `meter` (the work a check may do).
"""

from federation.validation.admission import (
    PATCH_CHECK_MAX_WORK,
    Findings,
    credentials_namespace_problems,
    local_problems,
    override_findings,
    override_problems,
    parse,
    priority_conflicts,
    secret_problems,
)
from federation.validation.identity import identity_problems
from federation.validation.meter import Meter
from federation.validation.patchcheck import PatchFailure, failing_patches, patch_check_cost

__all__ = [
    "PATCH_CHECK_MAX_WORK",
    "Findings",
    "Meter",
    "PatchFailure",
    "credentials_namespace_problems",
    "failing_patches",
    "identity_problems",
    "local_problems",
    "override_findings",
    "override_problems",
    "parse",
    "patch_check_cost",
    "priority_conflicts",
    "secret_problems",
]
