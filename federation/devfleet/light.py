"""The light profile: member apiservers that cost less memory, so one machine holds more of them.

A big local fleet is bounded by memory, and on a busy machine by how many apiservers can start
at once: an idle member apiserver holds ~190 MiB of its own (proportional set size; ~270 MiB
RSS, of which ~85 MiB is the binary's pages shared by every apiserver). Most of that is what
every kube-apiserver builds whatever it serves: the storage, watch caches, OpenAPI models and
controllers of every built-in API group. A member of a benchmark fleet needs far less: the core
and `apps` groups the copies live in, and what the apiserver itself needs to start and to
authorise us.

Opt-in (`LocalFleet(light=True)`, `bench/scale.py --light`), and applied to the members only:
the hub keeps every API the controller and the tests use (CRDs, webhooks, all kinds a template
may be), and the test suite's fleet is unchanged. Measured idle figures, with what each costs,
are in docs/scale.md (`bench/fleetflags.py` prints them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: The groups a light member serves: what copies of Deployments, ConfigMaps, Secrets and
#: Namespaces need, plus what the apiserver's own start-up hooks and admission plugins read
#: (RBAC bootstrap, leases, webhooks' configuration, priority classes, service CIDRs, storage
#: and runtime classes). Without one of these the apiserver never reports ready. Batch,
#: autoscaling, policy, certificates, events.k8s.io, resource.k8s.io, flowcontrol and the
#: alpha/beta groups are left out: a member of this profile cannot hold copies of those kinds.
LIGHT_GROUPS: tuple[str, ...] = (
    "api/v1",
    "apps/v1",
    "rbac.authorization.k8s.io/v1",
    "apiextensions.k8s.io/v1",
    "apiregistration.k8s.io/v1",
    "authorization.k8s.io/v1",
    "authentication.k8s.io/v1",
    "coordination.k8s.io/v1",
    "admissionregistration.k8s.io/v1",
    "scheduling.k8s.io/v1",
    "discovery.k8s.io/v1",
    "node.k8s.io/v1",
    "storage.k8s.io/v1",
    "networking.k8s.io/v1",
)

#: kube-apiserver flags of a light member. API Priority and Fairness goes with the groups: it
#: needs flowcontrol.apiserver.k8s.io, and a local member has one client (us) to be fair to.
#: The watch cache stays: turning it off saved nothing loaded (+4 MiB PSS), and did not keep 40
#: light members from failing to start at a load average of 60-78 (docs/scale.md).
LIGHT_APISERVER_ARGS: tuple[str, ...] = (
    "--enable-priority-and-fairness=false",
    "--runtime-config=api/all=false," + ",".join(f"{g}=true" for g in LIGHT_GROUPS),
)

#: Environment of the control-plane process tree (etcd, hub and members alike: the Go runtime
#: reads it at start, and the binary passes its environment to each apiserver). GOGC=50 collects
#: twice as often: less heap held between collections, a little more CPU per request.
#: GOMEMLIMIT is not set: at 120 MiB the apiservers spent their start-up collecting and never
#: became ready.
LIGHT_ENV: Mapping[str, str] = {"GOGC": "50"}


def member_args(members: Sequence[str], flags: Sequence[str] = LIGHT_APISERVER_ARGS) -> list[str]:
    """`flags` addressed to each member (the `NAME:--flag` form of the binary), so the hub keeps
    its defaults."""
    return [f"{m}:{flag}" for m in members for flag in flags]
