#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `make bench`: what the playbooks cost on a demo host. Prints, never asserts (no timed test):
#   - deploy time: playbooks/deploy.yml on a fresh host (the demo's platform and inventory);
#   - no-op re-run time of deploy.yml against a bare fact-gathering play on the same host, and
#     their ratio (the goal: the no-op re-run within 2.5x the fact-gathering play);
#   - rotation time: playbooks/rotate.yml with the HMAC keys and the tokens named, and the
#     readiness gap at the edge meanwhile: a bounded loop of HTTPS requests to the console
#     through the edge, inside the host; the seconds in which a request failed.
#
#     tests/bench/bench.sh [--keep]     --keep leaves the bench host up (docker exec -it caracal-bench bash)
#
# It uses its own host, caracal-bench (not the demo's caracal-demo), created and removed here.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
"$root/tests/platform/setup.sh"
# shellcheck source=../platform/env.sh
. "$root/tests/platform/env.sh"
cd "$CARACAL_ROOT"

keep=false
[ "${1:-}" = --keep ] && keep=true

name=caracal-bench
# The request loop: at most this many seconds and this many requests, one every INTERVAL.
loop_max_seconds="${CARACAL_BENCH_LOOP_SECONDS:-900}"
loop_max_requests="${CARACAL_BENCH_LOOP_REQUESTS:-20000}"
loop_interval="${CARACAL_BENCH_LOOP_INTERVAL:-0.1}"
rotate='["auditHmacKey", "streamsHmacKey", "gatewayStsHmacKey", "caracalAdminToken", "caracalCoordinatorToken"]'

work="$(mktemp -d "${TMPDIR:-/tmp}/caracal-bench.XXXXXX")"
platform="$work/platform.yml"
cleanup() {
    if [ "$keep" = false ]; then
        ansible-playbook molecule/_shared/destroy.yml -e "@$platform" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The demo's platform and inventory under another name, without the published port.
cat >"$platform" <<EOF
molecule_yml:
  platforms:
    - name: $name
      image: caracal-test/systemd:debian-13
      labels:
        org.caracal.hardened.engine: docker
EOF
mkdir -p "$work/inventory"
ln -s "$CARACAL_ROOT/inventories/local/group_vars" "$work/inventory/group_vars"
cat >"$work/inventory/hosts.yml" <<EOF
all:
  children:
    caracal:
      hosts:
        $name:
          ansible_connection: community.docker.docker
          ansible_python_interpreter: /usr/bin/python3
          ansible_pipelining: true
EOF
cat >"$work/facts.yml" <<'EOF'
- name: A bare fact-gathering play (the yardstick of the no-op re-run)
  hosts: caracal
  gather_facts: true
  tasks: []
EOF
inventory="$work/inventory/hosts.yml"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# ansible-playbook, quiet, timed; prints the seconds; the output goes to $work/<label>.log.
timed() {
    local label="$1" t0 t1 rc=0
    shift
    t0="$(now)"
    ansible-playbook -i "$inventory" "$@" >"$work/$label.log" 2>&1 || rc=$?
    t1="$(now)"
    if [ "$rc" -ne 0 ]; then
        echo "bench: $label failed ($rc); last lines:" >&2
        tail -n 40 "$work/$label.log" >&2
        exit 1
    fi
    elapsed "$t0" "$t1"
}
changed() { grep -E "^$name +: ok=" "$work/$1.log" | tail -n 1 | sed -n 's/.* changed=\([0-9]*\).*/\1/p'; }

echo "bench: a fresh host $name (the demo's platform), its engine and the test images (not timed)"
ansible-playbook molecule/_shared/destroy.yml -e "@$platform" >/dev/null
ansible-playbook molecule/_shared/create.yml -e "@$platform" >"$work/create.log"
ansible-playbook -i "$inventory" molecule/_shared/docker-host.yml >"$work/docker-host.log"

echo "bench: deploy.yml on the fresh host"
deploy="$(timed deploy playbooks/deploy.yml)"
echo "bench: deploy.yml again (nothing to do)"
# profile_tasks (ansible.posix) records each task's time for the breakdown printed below.
noop="$(ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=all \
    timed noop playbooks/deploy.yml)"
echo "bench: a bare fact-gathering play"
facts="$(timed facts "$work/facts.yml")"

# The request loop runs inside the host against the edge (SNI and CA of the demo's console).
server="$(sed -n 's|^caracal_web_url: *https://\([^:/]*\).*|\1|p' inventories/local/group_vars/caracal.yml)"
port="$(sed -n 's/^caracal_tls_https_port: *//p' inventories/local/group_vars/caracal.yml)"
docker exec -i "$name" sh -c 'cat > /root/bench-loop.py' <<'EOF'
import json, socket, ssl, sys, time
server, port, max_seconds, max_requests, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
context = ssl.create_default_context(cafile='/etc/ssl/caracal/certs/caracal-internal-ca.crt')
start, results = time.time(), []
while time.time() - start < max_seconds and len(results) < max_requests:
    try:
        open('/root/bench-loop.stop').close()
        break
    except OSError:
        pass
    t, ok = time.time(), False
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=server) as tls:
                tls.sendall(('GET / HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n' % (server, port)).encode())
                ok = tls.recv(64).startswith(b'HTTP/1.1 200')
    except OSError:
        ok = False
    results.append((round(t - start, 3), ok))
    time.sleep(interval)
json.dump(results, open('/root/bench-loop.json', 'w'))
EOF
docker exec "$name" rm -f /root/bench-loop.stop /root/bench-loop.json
docker exec -d "$name" python3 /root/bench-loop.py "$server" "$port" "$loop_max_seconds" "$loop_max_requests" "$loop_interval"
sleep 2
echo "bench: rotate.yml with the HMAC keys and the tokens named, under the request loop"
rotation="$(timed rotate playbooks/rotate.yml -e "{\"caracal_secrets_rotate\": $rotate}")"
sleep 2
docker exec "$name" touch /root/bench-loop.stop
for _ in $(seq 1 30); do
    docker exec "$name" test -f /root/bench-loop.json && break
    sleep 1
done
gap="$(docker exec "$name" python3 -c '
import json
results = json.load(open("/root/bench-loop.json"))
failed = [t for t, ok in results if not ok]
seconds = sorted(set(int(t) for t in failed))
print("%d requests, %d failed, %d second(s) with failing requests%s" % (
    len(results), len(failed), len(seconds),
    (" (from %.1fs to %.1fs after the loop started)" % (failed[0], failed[-1])) if failed else ""))
')"

ratio="$(awk -v a="$noop" -v b="$facts" 'BEGIN { printf "%.2f", a / b }')"
cat <<EOF

===== caracal.hardened benchmark on $name (Debian 13, Compose backend, $(nproc) cores) =====
deploy.yml, fresh host                 ${deploy}s   (changed=$(changed deploy))
deploy.yml, no-op re-run               ${noop}s   (changed=$(changed noop))
bare fact-gathering play               ${facts}s
no-op re-run / fact gathering          ${ratio}x   (goal: within 2.5x)
rotate.yml, 5 secrets named            ${rotation}s   (changed=$(changed rotate))
readiness gap at the edge              $gap
EOF
# Where the no-op re-run spends its time: per role (tasks, seconds), then the costliest tasks.
awk '
    /^=+ *$/ { on = 1; next }
    on && / -+ [0-9.]+s$/ {
        secs = $NF; sub(/s$/, "", secs)
        name = $0; sub(/ -+ [0-9.]+s$/, "", name)
        role = (name ~ /^caracal\.hardened\.[a-z_]+ : /) ? name : "(playbook)"
        sub(/ : .*/, "", role)
        total[role] += secs; count[role]++
        if (n < 8) { top[++n] = sprintf("    %6.2fs  %s", secs, substr(name, 1, 90)) }
    }
    END {
        print "no-op re-run by role (tasks that ran or were skipped, seconds):"
        for (r in total) printf "    %-28s %4d tasks %7.1fs\n", r, count[r], total[r]
        print "costliest tasks of the no-op re-run:"
        for (i = 1; i <= n; i++) print top[i]
    }' "$work/noop.log"
if [ "$keep" = true ]; then
    echo "bench: $name kept (docker exec -it $name bash; remove it with: docker rm -f -v $name)"
fi
