#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Prepares this machine for every caracal.hardened test command. Idempotent: silent when
# everything is already there, one line per thing it does otherwise. Runs as root, without a
# terminal, on a bare Debian 12 machine (CI) as well as on a prepared one.
#
#   1. Debian packages: docker.io (when no engine answers and none is installed), debootstrap,
#      the shellcheck package (ansible-test sanity), python3-venv when the interpreter lacks ensurepip
#   2. a Docker engine: dockerd started detached when `docker version` gets no server answer
#   3. the Python virtual environment (requirements/test.txt), keyed by requirements/*.txt
#   4. the collections dir linking caracal.hardened to this checkout
#   5. the Debian 12 and 13 systemd test images, rebuilt when their recipe changes
#   6. the pip bootstrap ansible-test sanity would download from an unreachable host
#   7. the service images of tests/images/build.sh, when that script exists
set -euo pipefail

# shellcheck source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CARACAL_ROOT"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }
# Runs a command with its output in a log; shows the end of the log when it fails.
logged() {
    local log="$1"
    shift
    printf '\n== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$log"
    if ! "$@" >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "failed: $* (full log: $log)"
    fi
}

mkdir -p "$CARACAL_CACHE/logs"
# One setup at a time on this machine (CI jobs or engineers sharing it).
exec 9>"$CARACAL_CACHE/setup.lock"
if ! flock -n 9; then
    say "waiting for another setup to finish"
    flock -w 1800 9 || die "another setup held $CARACAL_CACHE/setup.lock for 30 minutes"
fi

engine_answers() { timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# --- 1. Debian packages --------------------------------------------------------------------
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
missing=()
for pkg in debootstrap shellcheck; do
    installed "$pkg" || missing+=("$pkg")
done
if ! command -v docker >/dev/null 2>&1 || { ! engine_answers && ! command -v dockerd >/dev/null 2>&1; }; then
    installed docker.io || missing+=(docker.io)
fi
if ! "$CARACAL_PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    installed python3-venv || missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages (${missing[*]}); run this as root once"
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l
    logged "$CARACAL_CACHE/logs/apt.log" apt-get -q update
    logged "$CARACAL_CACHE/logs/apt.log" apt-get -q -y -o Dpkg::Use-Pty=0 install "${missing[@]}"
fi
"$CARACAL_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$CARACAL_PYTHON is Python $CARACAL_PY_VERSION; ansible-core 2.19 needs 3.11 or later (set CARACAL_PYTHON)"

# --- 2. Docker engine ----------------------------------------------------------------------
if ! engine_answers; then
    command -v dockerd >/dev/null 2>&1 || die "no Docker engine answers and dockerd is not installed"
    say "starting dockerd (log: $CARACAL_CACHE/logs/dockerd.log)"
    # Detached for good: its own session, no inherited descriptors (the setup lock on fd 9, the
    # phase's output pipe), and not a job of this shell, so nothing below ever waits for it.
    setsid nohup dockerd >>"$CARACAL_CACHE/logs/dockerd.log" 2>&1 </dev/null 9>&- &
    disown "$!"
    for _ in $(seq 1 60); do
        engine_answers && break
        sleep 1
    done
    if ! engine_answers; then
        tail -n 30 "$CARACAL_CACHE/logs/dockerd.log" >&2
        die "dockerd did not answer within 60 s"
    fi
    say "dockerd $(docker version --format '{{.Server.Version}}') is up"
fi

# --- 3. systemd test images (built in the background while the venv installs) ---------------
recipe_file="$CARACAL_ROOT/tests/platform/systemd-image.sh"
pids=()
names=()
# Never leave a build running behind a failed setup: wait for the builds (only those: a bare
# `wait` would also wait for anything else this shell started) before exiting.
wait_builds() {
    local pid
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap wait_builds EXIT
for spec in bookworm:12 trixie:13; do
    suite="${spec%%:*}"
    tag="$CARACAL_TEST_IMAGE_PREFIX:debian-${spec##*:}"
    recipe="$( { cat "$recipe_file"; printf '%s\n' "$suite"; } | sha256sum | cut -c1-12)"
    have="$(docker image inspect -f '{{ index .Config.Labels "org.caracal.hardened.recipe" }}' "$tag" 2>/dev/null || true)"
    if [ "$have" != "$recipe" ]; then
        say "building $tag from Debian $suite (recipe $recipe; log: $CARACAL_CACHE/logs/image-$suite.log)"
        bash "$recipe_file" "$suite" "$tag" "$recipe" >"$CARACAL_CACHE/logs/image-$suite.log" 2>&1 &
        pids+=("$!")
        names+=("$suite")
    fi
done

# --- 4. Python virtual environment ---------------------------------------------------------
marker="$CARACAL_VENV/.caracal-requirements"
if [ "$(cat "$marker" 2>/dev/null)" != "$CARACAL_REQ_HASH" ]; then
    start=$SECONDS
    if [ ! -x "$CARACAL_VENV/bin/python" ]; then
        say "creating the virtual environment $CARACAL_VENV (Python $CARACAL_PY_VERSION)"
        logged "$CARACAL_CACHE/logs/venv.log" "$CARACAL_PYTHON" -m venv "$CARACAL_VENV"
    fi
    say "installing requirements/test.txt into $CARACAL_VENV"
    logged "$CARACAL_CACHE/logs/venv.log" "$CARACAL_VENV/bin/python" -m pip install -q -r requirements/test.txt
    printf '%s\n' "$CARACAL_REQ_HASH" >"$marker"
    say "virtual environment ready in $((SECONDS - start)) s"
fi
touch "$marker"  # last use; venvs of other requirement sets unused for 14 days are removed
for old in "$CARACAL_CACHE"/venv-py*; do
    if [ "$old" != "$CARACAL_VENV" ] && [ -n "$(find "$old/.caracal-requirements" -mtime +14 2>/dev/null)" ]; then
        say "removing $old (unused for 14 days)"
        rm -rf "$old"
    fi
done

# --- 5. caracal.hardened -> this checkout ----------------------------------------------------
link="$CARACAL_COLLECTIONS/ansible_collections/caracal/hardened"
if [ "$(readlink "$link" 2>/dev/null)" != "$CARACAL_ROOT" ]; then
    mkdir -p "$(dirname "$link")"
    ln -sfn "$CARACAL_ROOT" "$link"
    say "linked $link -> $CARACAL_ROOT"
fi

# --- 6. ansible-test's pip bootstrap ---------------------------------------------------------
# ansible-test sanity bootstraps pip in its virtual environments with a get-pip script from
# ci-files.testing.ansible.com (unreachable here); it uses ~/.ansible/test/cache/get_pip_<ver>.py
# when present. Put our stand-in there, with the pip wheel from PyPI. A real get-pip script
# already in place (from a machine with that access) is left alone.
at_req="$("$CARACAL_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ansible_test/_internal/python_requirements.py"
at_pip="$(sed -n "s/^ *pip='\([0-9.]*\)',\{0,1\}$/\1/p" "$at_req" | head -n 1)"
[ -n "$at_pip" ] || die "cannot find the pip version ansible-test bootstraps in $at_req"
at_cache="${HOME:-/root}/.ansible/test/cache"
at_script="$at_cache/get_pip_${at_pip//./_}.py"
standin="$CARACAL_ROOT/tests/platform/get_pip_standin.py"
if { [ ! -f "$at_script" ] || grep -q 'caracal.hardened test platform' "$at_script"; } \
    && { ! cmp -s "$standin" "$at_script" || [ ! -f "$at_cache/pip-$at_pip-py3-none-any.whl" ]; }; then
    say "installing the pip $at_pip bootstrap for ansible-test sanity in $at_cache"
    mkdir -p "$at_cache"
    logged "$CARACAL_CACHE/logs/venv.log" "$CARACAL_VENV/bin/python" -m pip download -q --no-deps \
        --only-binary=:all: -d "$at_cache" "pip==$at_pip"
    cp "$standin" "$at_script"
fi

# --- 7. wait for the image builds ----------------------------------------------------------
failed=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        tail -n 30 "$CARACAL_CACHE/logs/image-${names[$i]}.log" >&2
        printf 'setup: ERROR: building the %s image failed\n' "${names[$i]}" >&2
        failed=1
    fi
done
[ "$failed" -eq 0 ] || exit 1
if [ "${#pids[@]}" -gt 0 ]; then
    # Untagged leftovers of earlier recipes, unless a container still uses them.
    docker image prune -f --filter "label=org.caracal.hardened.recipe" >/dev/null 2>&1 || true
fi

# --- 8. service images -----------------------------------------------------------------------
if [ -f tests/images/build.sh ]; then
    bash tests/images/build.sh
fi
