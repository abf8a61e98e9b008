#!/usr/bin/env bash
# A hub and two member kind clusters with everything installed, for people who have Docker:
# the CRDs, the controller's RBAC, a demo Postgres, the controller (built from this checkout),
# and one MemberCluster per member with a kubeconfig Secret for the member's least-privilege
# identity (deploy/rbac/member), reached at the kind cluster's internal address.
#
#   deploy/kind/up.sh            # idempotent: re-running updates what is there
#   deploy/kind/down.sh          # deletes the clusters
#
# Environment (all optional):
#   FEDERATION_KIND_PREFIX   cluster name prefix (default: federation) -> federation-hub, ...
#   FEDERATION_KIND_MEMBERS  member names (default: "member-1 member-2")
#   FEDERATION_KIND_STATE    where the kubeconfig and generated files go
#                            (default: ~/.local/share/federation/kind)
#   FEDERATION_IMAGE         the controller image to build and load (default: federation:dev)
#   KIND, KUBECTL, DOCKER    the tools to use (default: from PATH)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX=${FEDERATION_KIND_PREFIX:-federation}
read -r -a MEMBERS <<<"${FEDERATION_KIND_MEMBERS:-member-1 member-2}"
STATE=${FEDERATION_KIND_STATE:-${HOME}/.local/share/federation/kind}
IMAGE=${FEDERATION_IMAGE:-federation:dev}
KIND=${KIND:-kind}
KUBECTL=${KUBECTL:-kubectl}
DOCKER=${DOCKER:-docker}
NS=federation-system
KUBECONFIG_FILE=${STATE}/kubeconfig
HUB=${PREFIX}-hub

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
fail() {
	printf 'error: %s\n' "$1" >&2
	[ $# -lt 2 ] || printf 'hint: %s\n' "$2" >&2
	exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed" "$2"; }

need "$DOCKER" "install Docker (https://docs.docker.com/engine/install/)"
need "$KIND" "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
need "$KUBECTL" "install kubectl, or run from the repository's virtualenv: KUBECTL=.venv/bin/kubectl $0"
"$DOCKER" info >/dev/null 2>&1 || fail "Docker does not answer" "start the Docker daemon"

# kubectl against one kind cluster (context kind-<name> in our own kubeconfig file).
kc() {
	local cluster=$1
	shift
	"$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --context "kind-${cluster}" "$@"
}

# Wait until `command` prints something non-empty (at most $1 seconds).
wait_for_output() {
	local timeout=$1 what=$2
	shift 2
	local deadline=$((SECONDS + timeout)) out
	until out=$("$@" 2>/dev/null) && [ -n "$out" ]; do
		[ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${timeout}s waiting for ${what}"
		sleep 2
	done
	printf '%s' "$out"
}

create_cluster() {
	local name=$1
	if "$KIND" get clusters 2>/dev/null | grep -qx "$name"; then
		step "kind cluster ${name} exists"
	else
		step "creating kind cluster ${name}"
		"$KIND" create cluster --name "$name" --kubeconfig "$KUBECONFIG_FILE" --wait 180s
	fi
	"$KIND" export kubeconfig --name "$name" --kubeconfig "$KUBECONFIG_FILE" >/dev/null 2>&1
}

umask 077 # the state directory holds credentials
mkdir -p "$STATE"

# -- clusters --------------------------------------------------------------------------------
create_cluster "$HUB"
for member in "${MEMBERS[@]}"; do
	create_cluster "${PREFIX}-${member}"
done

# -- the controller image ------------------------------------------------------------------------
step "building ${IMAGE} from ${REPO}"
"$DOCKER" build --file "${REPO}/deploy/Dockerfile" --tag "$IMAGE" "$REPO"
step "loading ${IMAGE} into ${HUB}"
"$KIND" load docker-image "$IMAGE" --name "$HUB"

# -- the hub: CRDs, namespace, RBAC, demo Postgres -------------------------------------------------
step "installing the CRDs and the controller's namespace and RBAC on ${HUB}"
kc "$HUB" apply --server-side -k "${REPO}/deploy/crds"
kc "$HUB" wait --for condition=Established --timeout=60s -f "${REPO}/deploy/crds/" >/dev/null
kc "$HUB" apply --server-side -f "${REPO}/deploy/controller/namespace.yaml"

step "starting the demo Postgres on ${HUB}"
if ! kc "$HUB" -n "$NS" get secret postgres >/dev/null 2>&1; then
	password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	kc "$HUB" -n "$NS" create secret generic postgres --from-literal=password="$password" >/dev/null
	kc "$HUB" -n "$NS" create secret generic federation-database \
		--from-literal=url="postgresql://federation:${password}@postgres.${NS}.svc:5432/federation" >/dev/null
fi
# The dashboard API's bearer token (the Deployment reads it from this Secret).
if ! kc "$HUB" -n "$NS" get secret federation-api-token >/dev/null 2>&1; then
	kc "$HUB" -n "$NS" create secret generic federation-api-token \
		--from-literal=token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >/dev/null
fi
kc "$HUB" apply --server-side -f "${REPO}/deploy/kind/postgres.yaml"
kc "$HUB" -n "$NS" rollout status deployment/postgres --timeout=180s

# -- the controller --------------------------------------------------------------------------------
step "installing the controller (${IMAGE}) on ${HUB}"
"$KUBECTL" kustomize "${REPO}/deploy" |
	sed "s#image: ghcr.io/example/federation:[^[:space:]]*#image: ${IMAGE}#" |
	kc "$HUB" apply --server-side -f -

# -- members: least-privilege identity, kubeconfig Secret, MemberCluster ---------------------------
for member in "${MEMBERS[@]}"; do
	cluster=${PREFIX}-${member}
	step "joining ${cluster} as MemberCluster ${member}"
	kc "$cluster" apply --server-side -k "${REPO}/deploy/rbac/member"
	kc "$cluster" apply --server-side -f "${REPO}/deploy/rbac/member/token-secret.yaml"
	token=$(wait_for_output 60 "the token of ${cluster}'s federation-member ServiceAccount" \
		kc "$cluster" -n "$NS" get secret federation-member-token -o 'jsonpath={.data.token}')
	ca=$(kc "$cluster" -n "$NS" get secret federation-member-token -o 'jsonpath={.data.ca\.crt}')
	# The address other containers on the kind network use (not the host's 127.0.0.1 port).
	server=$("$KIND" get kubeconfig --internal --name "$cluster" | sed -n 's/^ *server: *//p' | head -n 1)
	[ -n "$server" ] || fail "kind did not report an internal address for ${cluster}"
	member_kubeconfig=${STATE}/${member}.kubeconfig
	cat >"$member_kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: ${member}
    cluster:
      server: ${server}
      certificate-authority-data: ${ca}
users:
  - name: federation-member
    user:
      token: $(printf '%s' "$token" | base64 -d)
contexts:
  - name: ${member}
    context:
      cluster: ${member}
      user: federation-member
current-context: ${member}
EOF
	kc "$HUB" -n "$NS" create secret generic "$member" --from-file=kubeconfig="$member_kubeconfig" \
		--dry-run=client -o yaml | kc "$HUB" apply --server-side -f -
	kc "$HUB" apply --server-side -f - <<EOF
apiVersion: federation.io/v1alpha1
kind: MemberCluster
metadata:
  name: ${member}
  labels:
    kind.federation.io/cluster: ${cluster}
spec:
  kubeconfigSecretRef:
    namespace: ${NS}
    name: ${member}
    key: kubeconfig
EOF
done

step "waiting for the controller"
kc "$HUB" -n "$NS" rollout status deployment/federation-controller --timeout=300s
for member in "${MEMBERS[@]}"; do
	kc "$HUB" wait --for condition=Ready --timeout=120s "membercluster/${member}" >/dev/null
done

cat >&2 <<EOF

The fleet is up: hub ${HUB}, members ${MEMBERS[*]} (all Ready).

  export KUBECONFIG=${KUBECONFIG_FILE}
  kubectl --context kind-${HUB} get memberclusters
  kubectl --context kind-${HUB} -n ${NS} logs deploy/federation-controller

Apply a template and a PropagationPolicy to the hub (README.md, "Policies, placement and
federation plan"); label the MemberClusters for your policies' selectors, e.g.
kubectl --context kind-${HUB} label membercluster ${MEMBERS[0]} region=eu.
Remove everything with deploy/kind/down.sh.
EOF
