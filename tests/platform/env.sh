# shellcheck shell=bash
# Environment for every caracal.hardened test command. Source it (bash):
#     . tests/platform/env.sh
# It only computes and exports; tests/platform/setup.sh creates what it points at.
# It changes no shell option of the caller, so it is safe to source interactively.
#
#   CARACAL_ROOT         the checkout this file belongs to
#   CARACAL_CACHE        ${XDG_CACHE_HOME:-$HOME/.cache}/caracal-hardened
#   CARACAL_PYTHON       the interpreter the virtual environment is built from (Python 3.11+)
#   CARACAL_VENV         the virtual environment, keyed by requirements/*.txt and the Python
#                        version (set it beforehand to use another one)
#   CARACAL_COLLECTIONS  a collections dir holding ansible_collections/caracal/hardened -> this
#                        checkout, keyed by the checkout path (two clones never share it)

CARACAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
CARACAL_CACHE="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/caracal-hardened"

if [ -z "${CARACAL_PYTHON:-}" ]; then
    for _caracal_py in python3.11 python3.12 python3.13 python3; do
        if command -v "$_caracal_py" >/dev/null 2>&1 \
            && "$_caracal_py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            CARACAL_PYTHON="$(command -v "$_caracal_py")"
            break
        fi
    done
    unset _caracal_py
fi
CARACAL_PYTHON="${CARACAL_PYTHON:-python3}"

_caracal_sha() { sha256sum | cut -c1-12; }
CARACAL_PY_VERSION="$("$CARACAL_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo unknown)"
CARACAL_REQ_HASH="$(cat "$CARACAL_ROOT"/requirements/*.txt | _caracal_sha)"
CARACAL_VENV="${CARACAL_VENV:-$CARACAL_CACHE/venv-py$CARACAL_PY_VERSION-$CARACAL_REQ_HASH}"
CARACAL_COLLECTIONS="$CARACAL_CACHE/collections/$(printf '%s' "$CARACAL_ROOT" | _caracal_sha)"
unset -f _caracal_sha

export CARACAL_ROOT CARACAL_CACHE CARACAL_PYTHON CARACAL_PY_VERSION CARACAL_REQ_HASH
export CARACAL_VENV CARACAL_COLLECTIONS

# The virtual environment first on PATH (once, however often this file is sourced).
case ":$PATH:" in
    *":$CARACAL_VENV/bin:"*) ;;
    *) PATH="$CARACAL_VENV/bin:$PATH" ;;
esac
# dockerd and debootstrap live in /usr/sbin, which a non-login root shell may lack.
case ":$PATH:" in
    *":/usr/sbin:"*) ;;
    *) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;;
esac
export PATH
export VIRTUAL_ENV="$CARACAL_VENV"

# Ansible finds this checkout as caracal.hardened, and community.docker / community.crypto in
# the `ansible` bundle inside the virtual environment. Nothing comes from ~/.ansible/collections.
export ANSIBLE_COLLECTIONS_PATH="$CARACAL_COLLECTIONS"
# Python imports of ansible_collections.caracal.hardened (unit tests, testinfra helpers).
case ":${PYTHONPATH:-}:" in
    *":$CARACAL_COLLECTIONS:"*) ;;
    *) export PYTHONPATH="$CARACAL_COLLECTIONS${PYTHONPATH:+:$PYTHONPATH}" ;;
esac
export ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1
if [ "${CI:-}" = "true" ] || [ ! -t 1 ]; then
    export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=false NO_COLOR=1 PY_COLORS=0
fi

# The systemd test images setup.sh builds (tests/platform/systemd-image.sh).
export CARACAL_TEST_IMAGE_PREFIX="${CARACAL_TEST_IMAGE_PREFIX:-caracal-test/systemd}"
export CARACAL_DEMO_NAME="caracal-demo"
