#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Rewrites requirements/constraints.txt: resolves requirements/test.txt (which includes run.txt)
# afresh, ignoring the current lock, and pins everything it resolves to. Run it after changing a
# pin in run.txt or test.txt; the next setup.sh then builds a new virtual environment.
set -euo pipefail

# shellcheck source=env.sh
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CARACAL_ROOT"

work="$(mktemp -d "${TMPDIR:-/tmp}/caracal-lock.XXXXXX")"
trap 'rm -rf "$work"' EXIT
for f in run.txt test.txt; do
    grep -v '^-c ' "requirements/$f" >"$work/$f"
done
"$CARACAL_PYTHON" -m venv "$work/venv"
if ! "$work/venv/bin/python" -m pip install -q --dry-run --ignore-installed --report "$work/report.json" \
    -r "$work/test.txt" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    exit 1
fi
"$work/venv/bin/python" - "$work/report.json" >requirements/constraints.txt <<'PY'
import json
import sys

report = json.load(open(sys.argv[1]))
pins = sorted(((i['metadata']['name'], i['metadata']['version']) for i in report['install']), key=lambda p: p[0].lower())
print('# Full lock of everything requirements/test.txt resolves to (transitive included), so a new')
print('# upstream release cannot change the test platform under our feet. Regenerate after changing')
print('# run.txt or test.txt: tests/platform/lock-requirements.sh')
for name, version in pins:
    print('%s==%s' % (name, version))
PY
echo "requirements/constraints.txt: $(grep -vc '^#' requirements/constraints.txt) pins"
