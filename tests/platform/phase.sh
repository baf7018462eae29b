#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# One test phase of caracal.hardened (run setup.sh first; test-all.sh runs them all):
#     tests/platform/phase.sh yamllint | ansible-lint | sanity | unit | image-contract | build
#         (image-contract: tests/image_contract/, the stand-in images against Caracal's startup
#         contract; "integration" is an old name for it, not Ansible integration targets)
#     tests/platform/phase.sh molecule [SCENARIO]    (no SCENARIO: every scenario in turn)
# Exit status: 0 passed, 77 skipped (nothing to test), anything else failed.
set -euo pipefail

# shellcheck source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CARACAL_ROOT"

SKIP=77

# pytest over a directory. "No tests collected" (exit 5) is a failure when the directory has
# test files (a broken collection must not pass silently); without any test file it is a skip.
pytest_dir() {
    local dir="$1"
    shift
    if [ ! -d "$dir" ]; then
        echo "$dir does not exist: skipped"
        return "$SKIP"
    fi
    if [ -z "$(find "$dir" -type f \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit)" ]; then
        echo "$dir has no test files (test_*.py, *_test.py): skipped"
        return "$SKIP"
    fi
    local rc=0
    python -m pytest -p no:cacheprovider -ra "$@" "$dir" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "FAIL: pytest collected no test from $dir although it holds test files"
        return 1
    fi
    return "$rc"
}

# The scenarios: every molecule/<name>/ with a molecule.yml (molecule/_shared has none).
scenarios() {
    local f
    for f in molecule/*/molecule.yml; do
        [ -f "$f" ] || continue
        f="${f%/molecule.yml}"
        printf '%s\n' "${f#molecule/}"
    done
}

# The collection artifact must hold the collection and nothing of the test platform: no tests,
# molecule, requirements, reports, demo inventory, Makefile, top-level dotfiles or caches.
build_check() {
    local out tarball listing bad
    out="$(mktemp -d "${TMPDIR:-/tmp}/caracal-build.XXXXXX")"
    BUILD_OUT="$out"
    trap 'rm -rf "$BUILD_OUT"' EXIT
    ansible-galaxy collection build --force --output-path "$out" .
    tarball="$(find "$out" -name 'caracal-hardened-*.tar.gz' -print -quit)"
    [ -n "$tarball" ] || { echo "FAIL: ansible-galaxy built no tarball"; return 1; }
    listing="$(tar -tzf "$tarball" | sed 's|^\./||')"
    echo "$(basename "$tarball"): $(printf '%s\n' "$listing" | grep -vc '/$') files"
    bad="$(printf '%s\n' "$listing" | grep -E \
        '^(tests|molecule|requirements|reports|changelogs/fragments|inventories/local)(/|$)|^Makefile$|^\.|(^|/)(__pycache__|\.[a-z]+_cache)(/|$)|\.pyc$|\.tar\.gz$' \
        || true)"
    if [ -n "$bad" ]; then
        echo "FAIL: the artifact ships test or developer files:"
        printf '%s\n' "$bad" | sed 's/^/  /'
        return 1
    fi
    local must
    for must in MANIFEST.json FILES.json meta/runtime.yml plugins/module_utils/_contract.py; do
        printf '%s\n' "$listing" | grep -qx "$must" || { echo "FAIL: the artifact lacks $must"; return 1; }
    done
    echo "the artifact holds no test or developer files"
}

phase="${1:-}"
shift || true
case "$phase" in
    yamllint)
        yamllint --strict .
        echo "yamllint: clean"
        ;;
    ansible-lint)
        ansible-lint
        ;;
    sanity)
        exec "$CARACAL_ROOT/tests/platform/sanity.sh" "$@"
        ;;
    unit)
        pytest_dir tests/unit "$@"
        ;;
    image-contract | integration)
        pytest_dir tests/image_contract "$@"
        ;;
    build)
        build_check
        ;;
    scenarios)
        scenarios
        ;;
    molecule)
        if [ "$#" -gt 0 ] && [ -n "$1" ]; then
            [ -f "molecule/$1/molecule.yml" ] || { echo "no scenario molecule/$1/molecule.yml"; exit 1; }
            molecule test -s "$1"
        else
            rc=0
            found=0
            for s in $(scenarios); do
                found=1
                molecule test -s "$s" || rc=1
            done
            [ "$found" -eq 1 ] || { echo "no molecule scenario yet: skipped"; exit "$SKIP"; }
            exit "$rc"
        fi
        ;;
    *)
        echo "usage: $0 yamllint|ansible-lint|sanity|unit|image-contract|build|scenarios|molecule [SCENARIO]" >&2
        exit 2
        ;;
esac
