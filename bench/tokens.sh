#!/usr/bin/env bash
# Load benchmark of Gatehouse's token endpoint (POST /oauth2/token).
#
# Builds the release binary and, for each signing algorithm in
# BENCH_ALGORITHMS, starts a throw-away server on a free loopback port with a
# fresh data dir and GATEHOUSE_AUTH__SIGNING_ALGORITHM set, registers a machine
# client and a user, then drives the client_credentials and password grants
# with `oha` at several concurrency levels. Prints a Markdown report (machine +
# results table with one row per algorithm, grant and level). The headline
# column is the server's CPU time per token (utime + stime of the server
# process over each measured run, from /proc/PID/stat).
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
BENCH_ALGORITHMS="${BENCH_ALGORITHMS:-EdDSA}"          # signing algorithms, one server each
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
read -r -a ALGORITHMS <<<"$BENCH_ALGORITHMS"
[[ ${#ALGORITHMS[@]} -gt 0 ]] || die "BENCH_ALGORITHMS is empty"
for a in "${ALGORITHMS[@]}"; do
    case "$a" in EdDSA|ES256|RS256) ;; *) die "unknown signing algorithm '$a' in BENCH_ALGORITHMS (EdDSA, ES256 or RS256)" ;; esac
done
[[ -z "$(printf '%s\n' "${ALGORITHMS[@]}" | sort | uniq -d)" ]] || die "BENCH_ALGORITHMS names an algorithm twice"
# Each algorithm needs an empty store (its first key signs at once, the user is new); a database
# named by GATEHOUSE_DATABASE_URL would keep the previous server's keys and users.
[[ -z "${GATEHOUSE_DATABASE_URL:-}" || ${#ALGORITHMS[@]} -eq 1 ]] \
    || die "with GATEHOUSE_DATABASE_URL set, BENCH_ALGORITHMS must name one algorithm (run once per algorithm, each on an empty database)"
optional_uint BENCH_PORT BENCH_OHA_THREADS
require_tools
cpu_setup

# ------------------------------------------------------------ cleanup trap --
WORK_DIR=""
SERVER_PID=""
SERVER_LOG=""
OHA_PID=""
FLOOD_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_oha "$FLOOD_PID"
    stop_oha "$OHA_PID"
    perf_end
    stop_process "$SERVER_PID" "server"
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        local f log_rc
        for f in "$WORK_DIR"/server-*.log; do
            [[ -e "$f" ]] || continue
            # On failure, only the log of the last server started is printed; all are kept.
            log_rc=0
            [[ "$(basename "$f")" != "$SERVER_LOG" ]] || log_rc="$rc"
            keep_log "$log_rc" "$(basename "$f")" 40 "the server log ($(basename "$f"))"
        done
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

# The benchmark measures capacity: the token endpoint's rate limits (per IP: the load generator is one
# address) are turned off unless the caller sets them.
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND:-0}"
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND:-0}"
# Likewise one address and one username may hold only a share of the password-hashing queue
# (bench/logins.sh measures that share); here the whole queue is the load generator's.
export GATEHOUSE_AUTH__PASSWORD_CHECKS_PER_SOURCE="${GATEHOUSE_AUTH__PASSWORD_CHECKS_PER_SOURCE:-1000000}"

# start_server ALG: a fresh server with GATEHOUSE_AUTH__SIGNING_ALGORITHM=ALG and its own data dir,
# so that its first key is of ALG and signs at once; its log goes to server-ALG.log.
start_server() {
    local alg="$1" data_dir="$WORK_DIR/data-$1"
    mkdir -p "$data_dir"
    SERVER_LOG="server-$alg.log"
    log "$alg: starting $GATEHOUSE_BIN on $BASE (data dir $data_dir)"
    GATEHOUSE_AUTH__SIGNING_ALGORITHM="$alg" "$GATEHOUSE_BIN" serve --data-dir "$data_dir" \
        --auth-listen "127.0.0.1:$BENCH_PORT" --issuer "$BASE" \
        </dev/null >"$WORK_DIR/$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    wait_for_200 "server ($alg)" "$BASE/readyz" "$SERVER_PID"
    log "$alg: server ready (pid $SERVER_PID)"
}

# form_body KEY=VALUE... -> application/x-www-form-urlencoded body
form_body() {
    python3 - "$@" <<'PY'
import sys, urllib.parse
print(urllib.parse.urlencode([tuple(a.split("=", 1)) for a in sys.argv[1:]]))
PY
}

# jwt_alg FILE -> the "alg" in the header of the access_token of the JSON FILE
jwt_alg() {
    python3 - "$1" <<'PY'
import base64, json, sys
with open(sys.argv[1]) as f:
    head = json.load(f)["access_token"].split(".")[0]
print(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["alg"])
PY
}

want_grant() { [[ " ${GRANTS[*]} " == *" $1 "* ]]; }
CC_BODY=""
PW_BODY=""
body_for() { if [[ "$1" == client_credentials ]]; then printf '%s' "$CC_BODY"; else printf '%s' "$PW_BODY"; fi; }
seconds_for() { if [[ "$1" == client_credentials ]]; then echo "$BENCH_SECONDS"; else echo "$BENCH_PASSWORD_SECONDS"; fi; }

# --------------------------------------------------------- fixtures + check --
# setup_fixtures ALG: the machine client and the user on the running server; checks that each
# grant answers 200 with an access token whose header names ALG.
setup_fixtures() {
    local alg="$1" g code got
    CC_BODY=""
    PW_BODY=""
    if want_grant client_credentials; then
        # The secret goes in the form body (client_secret_post), as the load generator sends one
        # fixed body; registration's default would be client_secret_basic.
        register_client "$BASE" client_secret_post
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

    for g in "${GRANTS[@]}"; do
        code="$(http POST "$BASE/oauth2/token" "$WORK_DIR/check.json" \
            -H 'Content-Type: application/x-www-form-urlencoded' --data "$(body_for "$g")")"
        [[ "$code" == 200 ]] || die "$g grant returned $code: $(head -c 500 "$WORK_DIR/check.json")"
        json_field "$WORK_DIR/check.json" access_token >/dev/null || die "$g grant: no access_token in response"
        got="$(jwt_alg "$WORK_DIR/check.json")" || die "$g grant: the access token's header is not readable"
        [[ "$got" == "$alg" ]] || die "$g grant: the access token is signed with $got, not $alg"
        log "$alg: $g grant answers 200 with an access_token signed with $got"
    done
}

# --------------------------------------------------------------------- run --
# run_oha OUTFILE SECONDS CONCURRENCY BODY: POST BODY to the token endpoint.
run_oha() {
    oha_run "$1" "$2" "$3" -m POST -T application/x-www-form-urlencoded -d "$4" "$BASE/oauth2/token"
}

# run_algorithm ALG: every grant and level against the running server, then the mixed phase.
run_algorithm() {
    local alg="$1" g c secs body out
    for g in "${GRANTS[@]}"; do
        secs="$(seconds_for "$g")"
        body="$(body_for "$g")"
        if [[ "$BENCH_WARMUP_SECONDS" -gt 0 ]]; then
            log "$alg $g: warm-up ${BENCH_WARMUP_SECONDS}s at c=16"
            run_oha "$WORK_DIR/warmup.json" "$BENCH_WARMUP_SECONDS" 16 "$body"
            kill -0 "$SERVER_PID" 2>/dev/null || die "server ($alg) exited during the $g warm-up"
        fi
        for c in "${CONCURRENCY_LEVELS[@]}"; do
            log "$alg $g: ${secs}s at c=$c"
            out="$WORK_DIR/oha-$alg-$g-c$c.json"
            # The server's CPU time over exactly this run (the window closes once oha has waited
            # for the last in-flight request).
            cpu_begin server "$SERVER_PID"
            perf_begin "tokens-$alg-$g-c$c" "$SERVER_PID"
            run_oha "$out" "$secs" "$c" "$body"
            cpu_end "$out"
            perf_end
            kill -0 "$SERVER_PID" 2>/dev/null || die "server ($alg) exited during the $g run at c=$c"
            [[ -z "$BENCH_RAW_DIR" ]] || cp "$out" "$out.cpu" "$BENCH_RAW_DIR/"
            printf '%s\t%s\t%s\t%s\n' "$alg" "$g" "$c" "$out" >>"$RESULTS"
        done
    done

    # A login flood must not slow everything else down (DESIGN.md: other endpoints keep a p99 of a few
    # milliseconds). Run a password flood at c=64 and, beside it, client_credentials at c=1.
    if want_grant client_credentials && want_grant password && [[ "${BENCH_MIXED:-1}" != 0 ]]; then
        secs="$BENCH_PASSWORD_SECONDS"
        log "$alg mixed: password flood at c=64 for ${secs}s with client_credentials at c=1 beside it"
        oha_start "$WORK_DIR/oha-$alg-mixed-flood.json" "$secs" 64 \
            -m POST -T application/x-www-form-urlencoded -d "$PW_BODY" "$BASE/oauth2/token"
        FLOOD_PID="$OHA_STARTED_PID"
        sleep 1   # let the flood fill the hashing queue first
        run_oha "$WORK_DIR/oha-$alg-mixed-cc.json" "$((secs > 2 ? secs - 2 : 1))" 1 "$CC_BODY"
        wait "$FLOOD_PID" || die "the password flood's oha failed"
        FLOOD_PID=""
        printf '%s\t%s\t%s\t%s\n' "$alg" "password (flood)" 64 "$WORK_DIR/oha-$alg-mixed-flood.json" >>"$RESULTS"
        printf '%s\t%s\t%s\t%s\n' "$alg" "client_credentials (beside the flood)" 1 "$WORK_DIR/oha-$alg-mixed-cc.json" >>"$RESULTS"
    fi
}

RESULTS="$WORK_DIR/results.tsv"
: >"$RESULTS"
LOAD_BEFORE="$(load_average)"
log "load average before the first server: $LOAD_BEFORE"
declare -A SERVER_RSS=()
for alg in "${ALGORITHMS[@]}"; do
    start_server "$alg"
    setup_fixtures "$alg"
    run_algorithm "$alg"
    SERVER_RSS[$alg]="$(rss_of "$SERVER_PID")"
    # One server at a time: the next algorithm gets the port, the CPUs and a fresh data dir.
    stop_process "$SERVER_PID" "server ($alg)"
    SERVER_PID=""
done
LOAD_AFTER="$(load_average)"
RSS_NOTE=""
for alg in "${ALGORITHMS[@]}"; do
    RSS_NOTE="${RSS_NOTE:+$RSS_NOTE, }$alg ${SERVER_RSS[$alg]:-n/a}"
done


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
    echo "- server: store ${GATEHOUSE_DATABASE_URL:+PostgreSQL (GATEHOUSE_DATABASE_URL)}${GATEHOUSE_DATABASE_URL:-embedded SQLite}${GATEHOUSE_CONFIG:+, config $GATEHOUSE_CONFIG}, log filter ${GATEHOUSE_LOG:-info (default)}"
    echo "- signing algorithms: ${ALGORITHMS[*]}, a fresh server each (\`GATEHOUSE_AUTH__SIGNING_ALGORITHM\`), one after the other; peak RSS $RSS_NOTE"
    echo "- load average (1, 5, 15 min) before the first server: $LOAD_BEFORE; after the last: $LOAD_AFTER"
    echo "- CPU µs/req: the server process's utime + stime (\`/proc/PID/stat\`, CLK_TCK $CLK_TCK) over each measured run, divided by the responses in that run; oha's own CPU is not counted"
    echo
    python3 - "$SUMMARY" <<'PY'
import json, sys

def ms(v):
    return "n/a" if v is None else f"{v * 1000:.2f}"

# Rows grouped by grant and level, the algorithms side by side, each in the order it was run.
rows = []
with open(sys.argv[1]) as f:
    for line in f:
        rows.append(json.loads(line))
def order(i):
    seen = []
    for r in rows:
        if r["cols"][i] not in seen:
            seen.append(r["cols"][i])
    return {v: n for n, v in enumerate(seen)}
alg_n, grant_n, conc_n = order(0), order(1), order(2)
rows.sort(key=lambda r: (grant_n[r["cols"][1]], conc_n[r["cols"][2]], alg_n[r["cols"][0]]))

def cpu(r):
    v = r["cpu"].get("server")
    return "n/a" if v is None else f"{v:.1f}"

print("| grant | concurrency | algorithm | CPU µs/req | requests | requests/s (200) | p50 ms | p99 ms | success rate (non-200) |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    alg, grant, conc = r["cols"]
    rate = f"{100.0 * r['ok'] / r['attempts']:.2f}%" if r["attempts"] else "n/a"
    print(f"| {grant} | {conc} | {alg} | {cpu(r)} | {r['attempts']} | {r['rps']:.1f} | {ms(r['p50'])} | "
          f"{ms(r['p99'])} | {rate} ({r['bad']}){r['detail']} |")
PY
    echo
    echo "CPU µs/req is the server's CPU time per response (the headline: it varies far less than requests/s when other work shares the machine); n/a for the mixed phase, whose two loads share one window. requests/s counts 200 responses only; p50/p99 are over all responses."
} >"$REPORT"

publish_report "$REPORT"
