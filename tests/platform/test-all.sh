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

# A phase's exit status as a result: 0 = pass, 77 = skip (nothing to test), anything else = FAIL.
phase_result() {
    case "$1" in
        0) echo pass ;;
        77) echo skip ;;
        *) echo FAIL ;;
    esac
}

# run_phase NAME COMMAND...: runs one phase, its output streamed and logged.
run_phase() {
    local name="$1" rc=0 start=$SECONDS result
    shift
    printf '\n===== %s =====\n' "$name"
    set +e
    "$@" </dev/null 2>&1 | tee "$logs/${name//[^A-Za-z0-9_.-]/_}.log"
    rc="${PIPESTATUS[0]}"
    set -e
    result="$(phase_result "$rc")"
    names+=("$name")
    results+=("$result")
    seconds+=("$((SECONDS - start))")
    printf '===== %s: %s (%d s)\n' "$name" "$result" "$((SECONDS - start))"
    return 0
}

# The molecule scenarios, CARACAL_TEST_LANES at a time (default 2; 1 = one after the other).
# Each scenario has its own hosts, so they do not meet; most of their time is spent waiting
# for containers and health checks, not computing. Longest first (seconds measured one at a
# time on 2 cores), so that the lanes end together; a scenario missing here goes first.
# Each scenario's output is printed whole when it ends; the table keeps the usual order.
scenario_seconds=(e2e:900 quadlet:450 tls:320 compose:310 secrets:230 verify:210 firewall:140)

run_scenarios() {
    local lanes="${CARACAL_TEST_LANES:-2}" s w running=0 ordered=()
    case "$lanes" in ''|*[!0-9]*|0) echo "CARACAL_TEST_LANES must be a positive number" >&2; lanes=1 ;; esac
    if [ "$lanes" -eq 1 ]; then
        for s in "$@"; do
            run_phase "molecule:$s" "$here/phase.sh" molecule "$s"
        done
        return 0
    fi
    mapfile -t ordered < <(for s in "$@"; do
        w="$(printf '%s\n' "${scenario_seconds[@]}" | sed -n "s/^$s://p")"
        printf '%s %s\n' "${w:-99999}" "$s"
    done | sort -rn | cut -d' ' -f2)
    echo
    echo "===== molecule: ${#ordered[@]} scenarios, $lanes at a time (CARACAL_TEST_LANES), longest first: ${ordered[*]}"
    for s in "${ordered[@]}"; do
        if [ "$running" -ge "$lanes" ]; then
            wait -n || true
            running=$((running - 1))
        fi
        run_scenario_job "$s" &
        running=$((running + 1))
    done
    wait || true
    for s in "$@"; do
        names+=("molecule:$s")
        results+=("$(cat "$logs/molecule_$s.result" 2>/dev/null || echo FAIL)")
        seconds+=("$(cat "$logs/molecule_$s.seconds" 2>/dev/null || echo 0)")
    done
}

# One scenario in the background: output to its log, then printed whole under a lock.
run_scenario_job() {
    local s="$1" rc=0 start=$SECONDS result log="$logs/molecule_$1.log"
    echo "===== molecule:$s: started"
    "$here/phase.sh" molecule "$s" </dev/null >"$log" 2>&1 || rc=$?
    result="$(phase_result "$rc")"
    echo "$result" >"$logs/molecule_$s.result"
    echo "$((SECONDS - start))" >"$logs/molecule_$s.seconds"
    {
        flock 9
        printf '\n===== molecule:%s =====\n' "$s"
        cat "$log"
        printf '===== molecule:%s: %s (%d s)\n' "$s" "$result" "$((SECONDS - start))"
    } 9>"$logs/.print.lock"
}

not_run() {
    names+=("$1")
    results+=("NOT RUN")
    seconds+=(0)
}

run_phase setup "$here/setup.sh"

phases=(yamllint ansible-lint sanity unit image-contract build)
if [ "${results[0]}" = pass ]; then
    for p in "${phases[@]}"; do
        run_phase "$p" "$here/phase.sh" "$p"
    done
    mapfile -t scenario_list < <("$here/phase.sh" scenarios)
    run_scenarios "${scenario_list[@]}"
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
