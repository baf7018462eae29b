#!/usr/bin/env bash
# Copyright (c) caracal.hardened contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Build the local stand-ins for Caracal's images (no registry is reachable on the test
# machines).  Every image is built FROM the local base image and cached by tag: an image
# is rebuilt only when the content hash of tests/images/** + plugins/module_utils/_contract.py
# (+ the base image id and the contract profile) differs from its org.caracal.test.hash label.
#
#   caracal-go, caracal-node, caracal-web   one stand-in build (tests/images/standin)
#   caracal-postgres                        tests/images/postgres
#   caracal-redis                           tests/images/redis
#
# Each is tagged <registry><name>:<release> and with every other release of the same
# contract profile (2026.07: v2026.07.03-rc.1 and v2026.06.25-rc.1).
#
# Usage: tests/images/build.sh [--registry PREFIX] [--release vX] [--base IMAGE]
#                              [--force] [--list] [--quiet]
# Environment: CARACAL_TEST_REGISTRY (default registry.caracal.test/),
#              CARACAL_TEST_RELEASE (default v2026.07.03-rc.1),
#              CARACAL_TEST_BASE_IMAGE (default caracal-test/systemd:debian-13),
#              CARACAL_TEST_BASE_WAIT (seconds to wait for the base image, default 600).
# --list prints "name=reference" for every image on stdout; everything else goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
contract="$repo/plugins/module_utils/_contract.py"

registry="${CARACAL_TEST_REGISTRY:-registry.caracal.test/}"
release="${CARACAL_TEST_RELEASE:-v2026.07.03-rc.1}"
base="${CARACAL_TEST_BASE_IMAGE:-caracal-test/systemd:debian-13}"
base_wait="${CARACAL_TEST_BASE_WAIT:-600}"
force=0
list=0
quiet=0
label=org.caracal.test.hash

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --registry) registry="${2?--registry needs a value}"; shift 2 ;;
        --registry=*) registry="${1#*=}"; shift ;;
        --release) release="${2?--release needs a value}"; shift 2 ;;
        --release=*) release="${1#*=}"; shift ;;
        --base) base="${2?--base needs a value}"; shift 2 ;;
        --base=*) base="${1#*=}"; shift ;;
        --force) force=1; shift ;;
        --list) list=1; shift ;;
        -q|--quiet) quiet=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; usage 2 ;;
    esac
done

log() { [ "$quiet" = 1 ] || printf 'build.sh: %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

case "$registry" in ''|*/) ;; *) registry="$registry/" ;; esac
case "$release" in v*) ;; *) release="v$release" ;; esac

command -v docker >/dev/null || die "the docker CLI is not installed"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers (start dockerd first)"
[ -r "$contract" ] || die "contract not found: $contract"

t0="$(now)"

# One build at a time on this machine (parallel pytest sessions share the images).
lockfile="${TMPDIR:-/tmp}/caracal-test-images.lock"
exec 9>"$lockfile"
flock -w 1800 9 || die "could not lock $lockfile"

# The release's contract profile and the tags of all its releases (release given first).
mapfile -t meta < <(python3 - "$contract" "$release" <<'PY'
import importlib.util
import sys

spec = importlib.util.spec_from_file_location('_contract', sys.argv[1])
contract = importlib.util.module_from_spec(spec)
spec.loader.exec_module(contract)
release = sys.argv[2]
for name in contract.profile_names():
    prof = contract.get_profile(name)
    tags = [prof['image_tag_format'].format(release=r) for r in prof['releases']]
    if release in tags:
        problems = contract.check_profile(name)
        if problems:
            sys.exit('contract profile %s is inconsistent: %s' % (name, '; '.join(problems)))
        print(name)
        print(' '.join([release] + [t for t in tags if t != release]))
        break
else:
    sys.exit('release %s belongs to no contract profile (known: %s)' % (
        release, ', '.join('%s: %s' % (n, ', '.join(contract.get_profile(n)['releases']))
                           for n in contract.profile_names())))
PY
) || die "cannot read the contract"
[ "${#meta[@]}" = 2 ] || die "cannot read the contract"
profile="${meta[0]}"
read -r -a tags <<<"${meta[1]}"

# The base image may still be being built by another job: wait for it, bounded.
if ! docker image inspect "$base" >/dev/null 2>&1; then
    log "waiting up to ${base_wait}s for the base image $base"
    deadline=$(( $(date +%s) + base_wait ))
    until docker image inspect "$base" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || die "base image $base not found (build it with debootstrap + docker import, see tests/images/README.md)"
        sleep 5
    done
fi
base_id="$(docker image inspect -f '{{.Id}}' "$base")"

hash="$(
    cd "$repo"
    {
        find tests/images -type f ! -name '*.pyc' ! -path '*/__pycache__/*' ! -name '*.swp' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum
        sha256sum plugins/module_utils/_contract.py
        printf 'base %s\nprofile %s\n' "$base_id" "$profile"
    } | sha256sum | cut -c1-12
)"

# image directory -> image names
declare -A names=(
    [standin]="caracal-go caracal-node caracal-web"
    [postgres]="caracal-postgres"
    [redis]="caracal-redis"
)
order=(standin postgres redis)

refs_of() {  # all references of one image directory
    local name tag
    for name in ${names[$1]}; do
        for tag in "${tags[@]}"; do printf '%s%s:%s\n' "$registry" "$name" "$tag"; done
    done
}

label_of() { docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true; }

workdir="$(mktemp -d "${TMPDIR:-/tmp}/caracal-images.XXXXXX")"
trap 'rm -rf "$workdir"' EXIT

pending=()
for dir in "${order[@]}"; do
    mapfile -t refs < <(refs_of "$dir")
    missing=()
    source_ref=""
    for ref in "${refs[@]}"; do
        if [ "$force" = 0 ] && [ "$(label_of "$ref")" = "$hash" ]; then
            source_ref="${source_ref:-$ref}"
        else
            missing+=("$ref")
        fi
    done
    if [ "${#missing[@]}" = 0 ]; then
        continue
    fi
    if [ -z "$source_ref" ] && [ "$force" = 0 ]; then
        # Same content built before under another registry or release: reuse it.
        source_ref="$(docker image ls -q --no-trunc --filter "label=$label=$hash" \
            --filter "label=org.caracal.test.image=$dir" | head -n1)"
    fi
    if [ -n "$source_ref" ]; then
        # Same content under another tag: only the tag is missing.
        for ref in "${missing[@]}"; do docker tag "$source_ref" "$ref"; done
        log "tagged ${missing[*]} (hash $hash)"
        continue
    fi
    pending+=("$dir")
done

if [ "${#pending[@]}" = 0 ]; then
    log "images up to date (hash $hash, profile $profile, $(since "$t0"))"
else
    log "building ${pending[*]} (hash $hash, profile $profile, base $base)"
    pids=()
    for dir in "${pending[@]}"; do
        mapfile -t refs < <(refs_of "$dir")
        # Remember what the tags pointed to, to drop superseded images afterwards.
        for ref in "${refs[@]}"; do docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true; done \
            | sort -u >"$workdir/$dir.old"
        (
            start="$(now)"
            stage="$workdir/$dir.context"
            mkdir -p "$stage"
            cp -a "$here/$dir/." "$stage/"
            cp "$contract" "$stage/_contract.py"
            find "$stage" -name '__pycache__' -prune -exec rm -rf {} +
            targs=()
            for ref in "${refs[@]}"; do targs+=(-t "$ref"); done
            if docker build --pull=false --rm --force-rm \
                    --build-arg "BASE_IMAGE=$base" --build-arg "PROFILE=$profile" \
                    --label "$label=$hash" --label "org.caracal.test.profile=$profile" \
                    --label "org.caracal.test.image=$dir" \
                    "${targs[@]}" "$stage" >"$workdir/$dir.log" 2>&1; then
                echo 0 >"$workdir/$dir.rc"
            else
                echo 1 >"$workdir/$dir.rc"
            fi
            since "$start" >"$workdir/$dir.time"
        ) &
        pids+=($!)
    done
    wait "${pids[@]}" || true
    failed=0
    for dir in "${pending[@]}"; do
        if [ "$(cat "$workdir/$dir.rc" 2>/dev/null || echo 1)" = 0 ]; then
            log "built ${names[$dir]} in $(cat "$workdir/$dir.time")"
            while read -r old; do
                [ -n "$old" ] || continue
                if [ -z "$(docker image inspect -f '{{join .RepoTags ""}}' "$old" 2>/dev/null)" ]; then
                    docker image rm "$old" >/dev/null 2>&1 || true
                fi
            done <"$workdir/$dir.old"
        else
            failed=1
            printf 'build.sh: building %s FAILED; last lines of the build log:\n' "${names[$dir]}" >&2
            tail -n 40 "$workdir/$dir.log" | sed 's/^/  | /' >&2
        fi
    done
    [ "$failed" = 0 ] || die "image build failed"
    log "done in $(since "$t0")"
fi

if [ "$list" = 1 ]; then
    for dir in "${order[@]}"; do
        for name in ${names[$dir]}; do
            for tag in "${tags[@]}"; do printf '%s:%s=%s%s:%s\n' "$name" "$tag" "$registry" "$name" "$tag"; done
        done
    done
fi
