#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# ansible-test sanity for caracal.hardened, without Docker (no registry is reachable here).
#     tests/platform/sanity.sh [extra ansible-test sanity arguments, e.g. --test pep8]
# ansible-test needs the collection at .../ansible_collections/caracal/hardened, so this copies
# the checkout (git-tracked plus untracked, non-ignored files: what a commit would hold) into a
# temporary tree, links community.docker and community.crypto from the virtual environment next
# to it, and runs the tests there. Results land in tests/output/sanity/.
#
# CARACAL_SANITY_MODE=local (default): ansible-test runs on the test virtual environment's
#   Python; each sanity test still gets its own cached venv under ~/.ansible/test/venv.
#   No --requirements: that would pip-install ansible-test's pins into our pinned venv.
# CARACAL_SANITY_MODE=venv: --venv --venv-system-site-packages, a fresh delegation venv each run
#   (measured 7-10 s slower). --docker is impossible here (no registry).
set -euo pipefail

# shellcheck source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CARACAL_ROOT"

python_version="${CARACAL_SANITY_PYTHON:-3.11}"
mode="${CARACAL_SANITY_MODE:-local}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/caracal-sanity.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
dest="$tmp/ansible_collections/caracal/hardened"
mkdir -p "$dest"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf - | tar -C "$dest" -xf -
else
    tar --exclude=.git --exclude=.cache --exclude=.ansible --exclude=tests/output \
        --exclude=__pycache__ --exclude='*.pyc' --exclude=.pytest_cache -cf - . | tar -C "$dest" -xf -
fi

# Dependencies from galaxy.yml, taken from the `ansible` bundle in the virtual environment.
site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
for dep in community/docker community/crypto; do
    mkdir -p "$tmp/ansible_collections/${dep%/*}"
    ln -s "$site/ansible_collections/$dep" "$tmp/ansible_collections/$dep"
done

args=(sanity --color no --python "$python_version")
case "$mode" in
    venv) args+=(--venv --venv-system-site-packages) ;;
    local) args+=(--local) ;;
    *) echo "CARACAL_SANITY_MODE must be venv or local" >&2; exit 2 ;;
esac

rc=0
(cd "$dest" && ANSIBLE_COLLECTIONS_PATH="$tmp" ansible-test "${args[@]}" "$@") || rc=$?

rm -rf tests/output/sanity
if [ -d "$dest/tests/output" ]; then
    mkdir -p tests/output/sanity
    cp -r "$dest/tests/output/." tests/output/sanity/ 2>/dev/null || true
fi
exit "$rc"
