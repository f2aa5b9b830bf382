#!/usr/bin/env bash
# Load benchmark of Gatehouse's token endpoint (POST /oauth2/token).
#
# Builds the release binary, starts a throw-away server on a free loopback
# port with a fresh data dir, registers a machine client and a user, then
# drives the client_credentials and password grants with `oha` at several
# concurrency levels and prints a Markdown report (machine + results table).
#
# All traffic goes to 127.0.0.1 only; every step is bounded in time.
# See bench/README.md for the environment knobs.
set -euo pipefail

# ---------------------------------------------------------------- settings --
BENCH_SECONDS="${BENCH_SECONDS:-10}"                   # per level, client_credentials
BENCH_PASSWORD_SECONDS="${BENCH_PASSWORD_SECONDS:-5}"  # per level, password grant
BENCH_WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-2}"      # per grant, before measuring
BENCH_CONCURRENCY="${BENCH_CONCURRENCY:-1 16 64}"
BENCH_GRANTS="${BENCH_GRANTS:-client_credentials password}"
BENCH_OUT="${BENCH_OUT:-}"
BENCH_PORT="${BENCH_PORT:-}"
BENCH_RAW_DIR="${BENCH_RAW_DIR:-}"
BENCH_OHA_THREADS="${BENCH_OHA_THREADS:-}"
BENCH_REQUEST_TIMEOUT="${BENCH_REQUEST_TIMEOUT:-30}"   # seconds, per request
BENCH_READY_TIMEOUT="${BENCH_READY_TIMEOUT:-30}"       # seconds, server start
OHA_VERSION="${OHA_VERSION:-1.16.0}"                   # installed if oha is missing
GATEHOUSE_BIN="${GATEHOUSE_BIN:-}"                     # set => skip the cargo build

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

require_uint BENCH_SECONDS BENCH_PASSWORD_SECONDS BENCH_WARMUP_SECONDS \
             BENCH_REQUEST_TIMEOUT BENCH_READY_TIMEOUT
[[ "$BENCH_SECONDS" -gt 0 && "$BENCH_PASSWORD_SECONDS" -gt 0 ]] \
    || die "BENCH_SECONDS and BENCH_PASSWORD_SECONDS must be > 0"
parse_concurrency
read -r -a GRANTS <<<"$BENCH_GRANTS"
for g in "${GRANTS[@]}"; do
    case "$g" in client_credentials|password) ;; *) die "unknown grant '$g' in BENCH_GRANTS" ;; esac
done
optional_uint BENCH_PORT BENCH_OHA_THREADS
require_tools

# ------------------------------------------------------------ cleanup trap --
WORK_DIR=""
SERVER_PID=""
OHA_PID=""
FLOOD_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_oha "$FLOOD_PID"
    stop_oha "$OHA_PID"
    stop_process "$SERVER_PID" "server"
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        keep_log "$rc" server.log 40 "the server log"
        rm -rf "$WORK_DIR"
    fi
    exit "$rc"
}
set_traps
make_work_dir gatehouse-bench

# ------------------------------------------------------------- oha + build --
setup_oha -z -c -m -d -T -t --no-tui
build_gatehouse

# ------------------------------------------------------------ start server --
if [[ -z "$BENCH_PORT" ]]; then
    BENCH_PORT="$(free_ports 1)"
fi
BASE="http://127.0.0.1:$BENCH_PORT"
DATA_DIR="$WORK_DIR/data"
mkdir -p "$DATA_DIR"

log "starting $GATEHOUSE_BIN on $BASE (data dir $DATA_DIR)"
# The benchmark measures capacity: the token endpoint's rate limits (per IP: the load generator is one
# address) are turned off unless the caller sets them.
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND:-0}"
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND:-0}"
# Likewise one address and one username may hold only a share of the password-hashing queue
# (bench/logins.sh measures that share); here the whole queue is the load generator's.
export GATEHOUSE_AUTH__PASSWORD_CHECKS_PER_SOURCE="${GATEHOUSE_AUTH__PASSWORD_CHECKS_PER_SOURCE:-1000000}"
"$GATEHOUSE_BIN" serve --data-dir "$DATA_DIR" \
    --auth-listen "127.0.0.1:$BENCH_PORT" --issuer "$BASE" \
    </dev/null >"$WORK_DIR/server.log" 2>&1 &
SERVER_PID=$!

wait_for_200 "server" "$BASE/readyz" "$SERVER_PID"
log "server ready (pid $SERVER_PID)"

# form_body KEY=VALUE... -> application/x-www-form-urlencoded body
form_body() {
    python3 - "$@" <<'PY'
import sys, urllib.parse
print(urllib.parse.urlencode([tuple(a.split("=", 1)) for a in sys.argv[1:]]))
PY
}

# --------------------------------------------------------- fixtures + check --
CC_BODY=""
PW_BODY=""
want_grant() { [[ " ${GRANTS[*]} " == *" $1 "* ]]; }

if want_grant client_credentials; then
    register_client "$BASE"
    CC_BODY="$(form_body grant_type=client_credentials "client_id=$CLIENT_ID" "client_secret=$CLIENT_SECRET")" \
        || die "could not build the client_credentials form body"
fi

if want_grant password; then
    code="$(http POST "$BASE/users" "$WORK_DIR/user.json" \
        -H 'Content-Type: application/json' \
        --data '{"username":"bench","password":"bench-password-1","email":"bench@example.com"}')"
    [[ "$code" == 201 ]] || die "POST /users returned $code: $(head -c 500 "$WORK_DIR/user.json")"
    PW_BODY="$(form_body grant_type=password client_id=gatehouse-web username=bench password=bench-password-1)" \
        || die "could not build the password form body"
    log "signed up user bench"
fi

body_for() { if [[ "$1" == client_credentials ]]; then printf '%s' "$CC_BODY"; else printf '%s' "$PW_BODY"; fi; }
seconds_for() { if [[ "$1" == client_credentials ]]; then echo "$BENCH_SECONDS"; else echo "$BENCH_PASSWORD_SECONDS"; fi; }

for g in "${GRANTS[@]}"; do
    code="$(http POST "$BASE/oauth2/token" "$WORK_DIR/check.json" \
        -H 'Content-Type: application/x-www-form-urlencoded' --data "$(body_for "$g")")"
    [[ "$code" == 200 ]] || die "$g grant returned $code: $(head -c 500 "$WORK_DIR/check.json")"
    json_field "$WORK_DIR/check.json" access_token >/dev/null || die "$g grant: no access_token in response"
    log "$g grant answers 200 with an access_token"
done

# --------------------------------------------------------------------- run --
# run_oha OUTFILE SECONDS CONCURRENCY BODY: POST BODY to the token endpoint.
run_oha() {
    oha_run "$1" "$2" "$3" -m POST -T application/x-www-form-urlencoded -d "$4" "$BASE/oauth2/token"
}

RESULTS="$WORK_DIR/results.tsv"
: >"$RESULTS"
for g in "${GRANTS[@]}"; do
    secs="$(seconds_for "$g")"
    body="$(body_for "$g")"
    if [[ "$BENCH_WARMUP_SECONDS" -gt 0 ]]; then
        log "$g: warm-up ${BENCH_WARMUP_SECONDS}s at c=16"
        run_oha "$WORK_DIR/warmup.json" "$BENCH_WARMUP_SECONDS" 16 "$body"
        kill -0 "$SERVER_PID" 2>/dev/null || die "server exited during the $g warm-up"
    fi
    for c in "${CONCURRENCY_LEVELS[@]}"; do
        log "$g: ${secs}s at c=$c"
        out="$WORK_DIR/oha-$g-c$c.json"
        run_oha "$out" "$secs" "$c" "$body"
        kill -0 "$SERVER_PID" 2>/dev/null || die "server exited during the $g run at c=$c"
        [[ -z "$BENCH_RAW_DIR" ]] || cp "$out" "$BENCH_RAW_DIR/"
        printf '%s\t%s\t%s\n' "$g" "$c" "$out" >>"$RESULTS"
    done
done

# A login flood must not slow everything else down (DESIGN.md: other endpoints keep a p99 of a few
# milliseconds). Run a password flood at c=64 and, beside it, client_credentials at c=1.
if want_grant client_credentials && want_grant password && [[ "${BENCH_MIXED:-1}" != 0 ]]; then
    secs="$BENCH_PASSWORD_SECONDS"
    log "mixed: password flood at c=64 for ${secs}s with client_credentials at c=1 beside it"
    oha_start "$WORK_DIR/oha-mixed-flood.json" "$secs" 64 \
        -m POST -T application/x-www-form-urlencoded -d "$PW_BODY" "$BASE/oauth2/token"
    FLOOD_PID="$OHA_STARTED_PID"
    sleep 1   # let the flood fill the hashing queue first
    run_oha "$WORK_DIR/oha-mixed-cc.json" "$((secs > 2 ? secs - 2 : 1))" 1 "$CC_BODY"
    wait "$FLOOD_PID" || die "the password flood's oha failed"
    FLOOD_PID=""
    printf '%s\t%s\t%s\n' "password (flood)" 64 "$WORK_DIR/oha-mixed-flood.json" >>"$RESULTS"
    printf '%s\t%s\t%s\n' "client_credentials (beside the flood)" 1 "$WORK_DIR/oha-mixed-cc.json" >>"$RESULTS"
fi

SERVER_RSS="$(rss_of "$SERVER_PID")"

# ------------------------------------------------------------------ report --
SUMMARY="$WORK_DIR/summary.jsonl"
oha_summaries "$RESULTS" >"$SUMMARY"
REPORT="$WORK_DIR/report.md"
{
    echo "## Token endpoint benchmark"
    echo
    machine_lines
    echo "- load generator: $OHA_VER on the same machine (shares the CPUs with the server)"
    echo "- durations: client_credentials ${BENCH_SECONDS}s, password ${BENCH_PASSWORD_SECONDS}s per level, after a ${BENCH_WARMUP_SECONDS}s warm-up per grant"
    echo "- server: store ${GATEHOUSE_DATABASE_URL:+PostgreSQL (GATEHOUSE_DATABASE_URL)}${GATEHOUSE_DATABASE_URL:-embedded SQLite}${GATEHOUSE_CONFIG:+, config $GATEHOUSE_CONFIG}, log filter ${GATEHOUSE_LOG:-info (default)}, peak RSS ${SERVER_RSS:-n/a}"
    echo
    python3 - "$SUMMARY" <<'PY'
import json, sys

def ms(v):
    return "n/a" if v is None else f"{v * 1000:.2f}"

print("| grant | concurrency | requests | requests/s (200) | p50 ms | p99 ms | success rate (non-200) |")
print("|---|---:|---:|---:|---:|---:|---:|")
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        grant, conc = r["cols"]
        rate = f"{100.0 * r['ok'] / r['attempts']:.2f}%" if r["attempts"] else "n/a"
        print(f"| {grant} | {conc} | {r['attempts']} | {r['rps']:.1f} | {ms(r['p50'])} | "
              f"{ms(r['p99'])} | {rate} ({r['bad']}){r['detail']} |")
PY
    echo
    echo "requests/s counts 200 responses only; p50/p99 are over all responses."
} >"$REPORT"

publish_report "$REPORT"
