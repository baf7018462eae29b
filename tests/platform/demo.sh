#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make demo`, the main command: deploy the hardened stack with playbooks/deploy.yml (secrets, the
# Compose backend, the TLS edge with its internal CA, the firewall, verification) to a disposable
# Debian 13 systemd container, print the verification report and the HTTPS URL.
#     tests/platform/demo.sh          create (or reuse) caracal-demo, deploy, report
#     tests/platform/demo.sh clean    remove caracal-demo and its anonymous volumes
# The container is created by molecule/_shared/create.yml with tests/platform/demo-platform.yml,
# so it carries the same flags as the molecule hosts (engine: docker). Running the demo again
# reuses the container and must change nothing: a second run checks that the play recap shows
# changed=0 and fails otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
"$here/setup.sh"
# shellcheck source=env.sh
. "$here/env.sh"
cd "$CARACAL_ROOT"

platform=tests/platform/demo-platform.yml
inventory=inventories/local/hosts.yml
playbook=playbooks/deploy.yml
name="$CARACAL_DEMO_NAME"
reports="reports/$name"
# Written inside the demo host after a successful deployment: its presence makes this a re-run.
marker=/var/lib/caracal-demo/deployed

if [ "${1:-}" = clean ]; then
    ansible-playbook molecule/_shared/destroy.yml -e "@$platform"
    echo "demo: $name removed"
    exit 0
fi

missing=()
for f in "$inventory" "$playbook" "$platform"; do
    [ -f "$f" ] || missing+=("$f")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "demo: ERROR: ${missing[*]} missing: the demo deploys $playbook to the host in $inventory" >&2
    exit 1
fi

# The console's URL and the port published on this machine, from the local inventory.
url="$(sed -n 's/^caracal_web_url: *//p' inventories/local/group_vars/caracal.yml)"
hostport="${url#https://}"
server="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" != "$hostport" ] || port=443

echo "demo: creating (or reusing) the Debian 13 systemd container $name"
ansible-playbook molecule/_shared/create.yml -e "@$platform"

rerun=false
if docker exec "$name" test -f "$marker"; then
    rerun=true
fi

echo "demo: installing the inner Docker engine and loading the test images"
ansible-playbook -i "$inventory" molecule/_shared/docker-host.yml

log="$(mktemp "${TMPDIR:-/tmp}/caracal-demo.XXXXXX")"
trap 'rm -f "$log"' EXIT
echo "demo: ansible-playbook -i $inventory $playbook"
start=$SECONDS
set +e
ansible-playbook -i "$inventory" "$playbook" 2>&1 | tee "$log"
rc="${PIPESTATUS[0]}"
set -e
took=$((SECONDS - start))

# The recap line of the demo host: "caracal-demo : ok=N changed=N unreachable=N failed=N ...".
recap="$(grep -E "^$name +: ok=" "$log" | tail -n 1 || true)"
changed="$(sed -n 's/.* changed=\([0-9]*\).*/\1/p' <<<"$recap")"

if [ -f "$reports/caracal-verify.md" ]; then
    printf '\n===== verification report: %s/caracal-verify.md =====\n' "$reports"
    cat "$reports/caracal-verify.md"
    printf '===== end of the report (JSON: %s/caracal-verify.json) =====\n' "$reports"
else
    echo "demo: deploy.yml wrote no report ($reports/caracal-verify.md)"
fi

if [ "$rc" -ne 0 ]; then
    echo "demo: FAILED: $playbook exited $rc after ${took}s (output above)" >&2
    exit "$rc"
fi

# Trust the internal CA, then ask the console through the published port, as a browser would.
docker cp "$name:/etc/ssl/caracal/certs/caracal-internal-ca.crt" "$reports/caracal-internal-ca.crt" >/dev/null
status="$(curl --silent --show-error --output /dev/null --write-out '%{http_code}' --max-time 10 \
    --cacert "$reports/caracal-internal-ca.crt" --resolve "$server:$port:127.0.0.1" "$url/" || true)"

echo
echo "demo: deploy.yml took ${took}s: $recap"
echo "demo: the console: $url/  (HTTP $status from this machine)"
echo "demo:   its certificate is issued by the demo's internal CA: $reports/caracal-internal-ca.crt"
echo "demo:   curl --cacert $reports/caracal-internal-ca.crt $url/"
if [ "$status" != 200 ]; then
    echo "demo: FAILED: the console did not answer 200 over HTTPS" >&2
    exit 1
fi

if [ "$rerun" = true ]; then
    if [ "$changed" != 0 ]; then
        echo "demo: FAILED: this re-run changed $changed task(s); a second run must change nothing" >&2
        exit 1
    fi
    echo "demo: re-run: changed=0, nothing changed (as it must)"
else
    docker exec "$name" sh -c "mkdir -p '$(dirname "$marker")' && date -u +%FT%TZ > '$marker'"
    echo "demo: first deployment: changed=$changed; run 'make demo' again: it must report changed=0"
fi
echo "demo: $name stays up for inspection (docker exec -it $name bash); 'make demo-clean' removes it."
