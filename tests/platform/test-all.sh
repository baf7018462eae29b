#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The whole caracal.hardened suite (`make test`, `.ci/run`): setup, then every phase in turn,
# each timed, continuing past failures; a summary table at the end and, as the very last line,
#     suite: N passed, M failed
# (phases counted). Exit status 0 only when no phase failed. Logs: tests/output/logs/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
here=tests/platform
logs=tests/output/logs
rm -rf "$logs"
mkdir -p "$logs"

names=()
results=()
seconds=()
suite_start=$SECONDS

# run_phase NAME COMMAND...: runs one phase, its output streamed and logged.
# Exit 0 = pass, 77 = skip (nothing to test), anything else = FAIL.
run_phase() {
    local name="$1" rc=0 start=$SECONDS result
    shift
    printf '\n===== %s =====\n' "$name"
    set +e
    "$@" </dev/null 2>&1 | tee "$logs/${name//[^A-Za-z0-9_.-]/_}.log"
    rc="${PIPESTATUS[0]}"
    set -e
    case "$rc" in
        0) result=pass ;;
        77) result=skip ;;
        *) result=FAIL ;;
    esac
    names+=("$name")
    results+=("$result")
    seconds+=("$((SECONDS - start))")
    printf '===== %s: %s (%d s)\n' "$name" "$result" "$((SECONDS - start))"
    return 0
}

not_run() {
    names+=("$1")
    results+=("NOT RUN")
    seconds+=(0)
}

run_phase setup "$here/setup.sh"

phases=(yamllint ansible-lint sanity unit integration build)
if [ "${results[0]}" = pass ]; then
    for p in "${phases[@]}"; do
        run_phase "$p" "$here/phase.sh" "$p"
    done
    mapfile -t scenario_list < <("$here/phase.sh" scenarios)
    for s in "${scenario_list[@]}"; do
        run_phase "molecule:$s" "$here/phase.sh" molecule "$s"
    done
else
    echo "setup failed: no other phase can run"
    for p in "${phases[@]}"; do
        not_run "$p"
    done
    not_run molecule
fi

passed=0
failed=0
printf '\n%-32s %-8s %8s\n' PHASE RESULT SECONDS
printf '%-32s %-8s %8s\n' "--------------------------------" "--------" "--------"
for i in "${!names[@]}"; do
    printf '%-32s %-8s %8d\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}"
    case "${results[$i]}" in
        pass) passed=$((passed + 1)) ;;
        skip) ;;
        *) failed=$((failed + 1)) ;;
    esac
done
printf '%-32s %-8s %8d\n' TOTAL "" "$((SECONDS - suite_start))"
printf 'logs: %s/\n' "$logs"
printf 'suite: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
