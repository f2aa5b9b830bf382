#!/usr/bin/env bash
# Fair password hashing under a one-source login flood: legitimate logins per second, and their
# latency, while one address floods the token endpoint with wrong password grants.
#
# Starts a throw-away `gatehouse serve` on a free loopback port with a fresh data dir, signs up
# one user, then runs `revocation-bench logins` (crates/gatehouse-bench) twice: without a flood
# (the baseline) and with BENCH_FLOOD_CONCURRENCY wrong guesses in flight from 127.0.0.2, the
# legitimate logins coming from 127.0.0.3 at BENCH_CONCURRENCY. A Markdown report goes to
# stdout. All traffic goes to 127.0.0.x only; every step is bounded in time.
set -euo pipefail

# ---------------------------------------------------------------- settings --
BENCH_SECONDS="${BENCH_SECONDS:-10}"                     # measured, per run
BENCH_WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-2}"        # flood before measuring
BENCH_CONCURRENCY="${BENCH_CONCURRENCY:-4}"              # legitimate logins in flight
BENCH_FLOOD_CONCURRENCY="${BENCH_FLOOD_CONCURRENCY:-128}" # wrong guesses in flight, one address
BENCH_OUT="${BENCH_OUT:-}"
BENCH_RAW_DIR="${BENCH_RAW_DIR:-}"
BENCH_READY_TIMEOUT="${BENCH_READY_TIMEOUT:-30}"         # s, server start
GATEHOUSE_BIN="${GATEHOUSE_BIN:-}"                       # set => skip building the server
BENCH_TOOL_BIN="${BENCH_TOOL_BIN:-}"                     # set => skip building revocation-bench
# lib.sh expects these (oha is not used here).
BENCH_REQUEST_TIMEOUT=30
OHA_PID=""
export GATEHOUSE_LOG="${GATEHOUSE_LOG:-warn}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

require_uint BENCH_SECONDS BENCH_WARMUP_SECONDS BENCH_CONCURRENCY BENCH_FLOOD_CONCURRENCY \
             BENCH_READY_TIMEOUT
[[ "$BENCH_SECONDS" -gt 0 && "$BENCH_CONCURRENCY" -gt 0 ]] \
    || die "BENCH_SECONDS and BENCH_CONCURRENCY must be > 0"
require_tools

# ------------------------------------------------------------ cleanup trap --
WORK_DIR=""
SERVER_PID=""
TOOL_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_process "$TOOL_PID" "revocation-bench"
    stop_process "$SERVER_PID" "server"
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        keep_log "$rc" server.log 40 "the server log"
        if [[ -n "$BENCH_RAW_DIR" ]]; then
            cp "$WORK_DIR"/run-*.out "$BENCH_RAW_DIR/" 2>/dev/null || true
        fi
        rm -rf "$WORK_DIR"
    fi
    exit "$rc"
}
set_traps
make_work_dir gatehouse-bench-logins

# ------------------------------------------------------------------- build --
if [[ -z "$GATEHOUSE_BIN" || -z "$BENCH_TOOL_BIN" ]]; then
    packages=()
    [[ -n "$GATEHOUSE_BIN" ]] || packages+=(-p gatehouse)
    [[ -n "$BENCH_TOOL_BIN" ]] || packages+=(-p gatehouse-bench)
    log "cargo build --release ${packages[*]}"
    (cd "$REPO_ROOT" && cargo build --release "${packages[@]}") >&2 || die "cargo build failed"
    target_dir="${CARGO_TARGET_DIR:-target}"
    [[ "$target_dir" = /* ]] || target_dir="$REPO_ROOT/$target_dir"
    GATEHOUSE_BIN="${GATEHOUSE_BIN:-$target_dir/release/gatehouse}"
    BENCH_TOOL_BIN="${BENCH_TOOL_BIN:-$target_dir/release/revocation-bench}"
fi
[[ -x "$GATEHOUSE_BIN" ]] || die "server binary not found or not executable: $GATEHOUSE_BIN"
[[ -x "$BENCH_TOOL_BIN" ]] || die "revocation-bench not found or not executable: $BENCH_TOOL_BIN"

# ------------------------------------------------------------ start server --
PORT="$(free_ports 1)"
BASE="http://127.0.0.1:$PORT"
DATA_DIR="$WORK_DIR/data"
mkdir -p "$DATA_DIR"
# The flood is one address far above the per-IP token limit: the benchmark measures what the
# hashing queue's shares do, so rate limits are off unless the caller sets them.
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND:-0}"
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND:-0}"
log "starting $GATEHOUSE_BIN on $BASE (data dir $DATA_DIR)"
"$GATEHOUSE_BIN" serve --data-dir "$DATA_DIR" \
    --auth-listen "127.0.0.1:$PORT" --issuer "$BASE" \
    </dev/null >"$WORK_DIR/server.log" 2>&1 &
SERVER_PID=$!
wait_for_200 "server" "$BASE/readyz" "$SERVER_PID"

code="$(http POST "$BASE/users" "$WORK_DIR/user.json" \
    -H 'Content-Type: application/json' \
    --data '{"username":"bench","password":"bench-password-1","email":"bench@example.com"}')"
[[ "$code" == 201 ]] || die "POST /users returned $code: $(head -c 500 "$WORK_DIR/user.json")"

# ---------------------------------------------------------------------- run --
# run_logins NAME FLOOD_CONCURRENCY: one measurement; its JSON line goes to run-NAME.json.
run_logins() {
    local name="$1" flood="$2" rc=0
    log "$name: legitimate logins at c=$BENCH_CONCURRENCY for ${BENCH_SECONDS}s, flood at c=$flood"
    timeout --kill-after=5 "$((BENCH_SECONDS + BENCH_WARMUP_SECONDS + 120))" \
        "$BENCH_TOOL_BIN" logins --auth "$BASE" --username bench --password bench-password-1 \
            --concurrency "$BENCH_CONCURRENCY" --flood-concurrency "$flood" \
            --duration-secs "$BENCH_SECONDS" --warmup-secs "$BENCH_WARMUP_SECONDS" \
            --label "$name" >"$WORK_DIR/run-$name.out" 2>&1 </dev/null &
    TOOL_PID=$!
    wait "$TOOL_PID" || rc=$?
    TOOL_PID=""
    [[ $rc -eq 0 ]] || { cat "$WORK_DIR/run-$name.out" >&2; die "revocation-bench logins failed ($rc)"; }
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited during $name"
    tail -n 1 "$WORK_DIR/run-$name.out" >"$WORK_DIR/run-$name.json"
    sed '$d' "$WORK_DIR/run-$name.out" >&2
}
run_logins baseline 0
run_logins flood "$BENCH_FLOOD_CONCURRENCY"
SERVER_RSS="$(rss_of "$SERVER_PID")"

# ------------------------------------------------------------------ report --
REPORT="$WORK_DIR/report.md"
{
    echo "## Logins under a one-source flood"
    echo
    machine_lines
    echo "- load generator: revocation-bench logins on the same machine (shares the CPUs with the server)"
    echo "- server: $GATEHOUSE_BIN, embedded SQLite, log filter $GATEHOUSE_LOG, default hashing settings, token rate limits off; peak RSS ${SERVER_RSS:-n/a}"
    echo "- legitimate logins from 127.0.0.3 at concurrency $BENCH_CONCURRENCY for ${BENCH_SECONDS}s; flood of wrong password grants (unknown names) from 127.0.0.2 after a ${BENCH_WARMUP_SECONDS}s warm-up"
    echo
    python3 - "$WORK_DIR/run-baseline.json" "$WORK_DIR/run-flood.json" <<'PY'
import json, sys

def ms(v):
    return "n/a" if v is None else f"{v:.1f}"

print("| run | flood concurrency | legitimate logins | logins/s (200) | p50 ms | p99 ms | legitimate non-200 | flood requests/s | flood answers |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for path in sys.argv[1:]:
    with open(path) as f:
        r = json.load(f)
    legit, flood = r["legit"], r["flood"]
    bad = legit["requests"] - legit["ok"]
    answers = ", ".join(f"{k}: {v}" for k, v in flood["answers"].items()) or "none"
    print(f"| {r['label']} | {r['flood_concurrency']} | {legit['requests']} | {legit['per_second']:.1f} | "
          f"{ms(legit['p50_ms'])} | {ms(legit['p99_ms'])} | {bad} | {flood['per_second_during']:.1f} | {answers} |")
PY
} >"$REPORT"

publish_report "$REPORT"
