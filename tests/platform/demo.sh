#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make demo`: deploy playbooks/deploy.yml to a disposable Debian 13 systemd container.
#     tests/platform/demo.sh          create (or reuse) caracal-demo, deploy, show the report
#     tests/platform/demo.sh clean    remove caracal-demo and its anonymous volumes
# The container is created by molecule/_shared/create.yml with tests/platform/demo-platform.yml,
# so it carries the same flags as the molecule hosts (engine: docker). Running the demo again
# reuses the container and must change nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
"$here/setup.sh"
# shellcheck source=env.sh
. "$here/env.sh"
cd "$CARACAL_ROOT"

platform=tests/platform/demo-platform.yml
inventory=inventories/local/hosts.yml
playbook=playbooks/deploy.yml

if [ "${1:-}" = clean ]; then
    ansible-playbook molecule/_shared/destroy.yml -e "@$platform"
    echo "demo: $CARACAL_DEMO_NAME removed"
    exit 0
fi

missing=()
for f in "$inventory" "$playbook"; do
    [ -f "$f" ] || missing+=("$f")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "demo: ERROR: ${missing[*]} missing: the demo deploys $playbook to the host in $inventory" >&2
    exit 1
fi

echo "demo: creating (or reusing) the Debian 13 systemd container $CARACAL_DEMO_NAME"
ansible-playbook molecule/_shared/create.yml -e "@$platform"

echo "demo: installing the inner Docker engine and loading the test images"
ansible-playbook -i "$inventory" molecule/_shared/docker-host.yml

echo "demo: ansible-playbook -i $inventory $playbook"
ansible-playbook -i "$inventory" "$playbook"

report="$(find reports -type f -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 1 | cut -d' ' -f2- || true)"
if [ -n "$report" ]; then
    printf '\n===== verification report: %s =====\n' "$report"
    cat "$report"
    printf '===== end of %s =====\n' "$report"
else
    echo "demo: the playbook wrote no report under reports/"
fi
echo
echo "demo: $CARACAL_DEMO_NAME stays up for inspection (docker exec -it $CARACAL_DEMO_NAME bash);"
echo "demo: run 'make demo' again to re-apply (it must report changed=0), 'make demo-clean' to remove it."
