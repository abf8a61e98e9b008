#!/usr/bin/env bash
# Delete the kind clusters deploy/kind/up.sh created, and its state directory (kubeconfigs with
# tokens). Same environment variables as up.sh.
set -euo pipefail

PREFIX=${FEDERATION_KIND_PREFIX:-federation}
read -r -a MEMBERS <<<"${FEDERATION_KIND_MEMBERS:-member-1 member-2}"
STATE=${FEDERATION_KIND_STATE:-${HOME}/.local/share/federation/kind}
KIND=${KIND:-kind}

command -v "$KIND" >/dev/null 2>&1 || {
	printf 'error: %s is not installed\n' "$KIND" >&2
	exit 1
}

existing=$("$KIND" get clusters 2>/dev/null || true)
for cluster in "${PREFIX}-hub" "${MEMBERS[@]/#/${PREFIX}-}"; do
	if grep -qx "$cluster" <<<"$existing"; then
		printf '==> deleting kind cluster %s\n' "$cluster" >&2
		"$KIND" delete cluster --name "$cluster"
	fi
done
rm -rf -- "$STATE"
printf 'removed the kind fleet (%s-*) and %s\n' "$PREFIX" "$STATE" >&2
