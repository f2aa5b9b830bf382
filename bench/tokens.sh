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

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
for v in BENCH_SECONDS BENCH_PASSWORD_SECONDS BENCH_WARMUP_SECONDS \
         BENCH_REQUEST_TIMEOUT BENCH_READY_TIMEOUT; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
[[ "$BENCH_SECONDS" -gt 0 && "$BENCH_PASSWORD_SECONDS" -gt 0 ]] \
    || die "BENCH_SECONDS and BENCH_PASSWORD_SECONDS must be > 0"
read -r -a CONCURRENCY_LEVELS <<<"$BENCH_CONCURRENCY"
[[ ${#CONCURRENCY_LEVELS[@]} -gt 0 ]] || die "BENCH_CONCURRENCY is empty"
for c in "${CONCURRENCY_LEVELS[@]}"; do
    if ! is_uint "$c" || [[ "$c" -eq 0 ]]; then die "bad concurrency level '$c'"; fi
done
read -r -a GRANTS <<<"$BENCH_GRANTS"
for g in "${GRANTS[@]}"; do
    case "$g" in client_credentials|password) ;; *) die "unknown grant '$g' in BENCH_GRANTS" ;; esac
done
[[ -z "$BENCH_PORT" ]] || is_uint "$BENCH_PORT" || die "BENCH_PORT must be a number"
[[ -z "$BENCH_OHA_THREADS" ]] || is_uint "$BENCH_OHA_THREADS" || die "BENCH_OHA_THREADS must be a number"

command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"
command -v timeout >/dev/null || die "timeout (coreutils) is required"

# ------------------------------------------------------------ cleanup trap --
WORK_DIR=""
SERVER_PID=""
OHA_PID=""
FLOOD_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$FLOOD_PID" ]] && kill -0 "$FLOOD_PID" 2>/dev/null; then
        kill -TERM "$FLOOD_PID" 2>/dev/null || true
        wait "$FLOOD_PID" 2>/dev/null || true
    fi
    if [[ -n "$OHA_PID" ]] && kill -0 "$OHA_PID" 2>/dev/null; then
        kill -TERM "$OHA_PID" 2>/dev/null || true   # timeout passes it on to oha
        wait "$OHA_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do            # up to 5 s for a graceful stop
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server did not stop on SIGTERM; sending SIGKILL"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        if [[ $rc -ne 0 && -s "$WORK_DIR/server.log" ]]; then
            log "last lines of the server log:"
            tail -n 40 "$WORK_DIR/server.log" >&2 || true
        fi
        if [[ -n "$BENCH_RAW_DIR" && -f "$WORK_DIR/server.log" ]]; then
            cp "$WORK_DIR/server.log" "$BENCH_RAW_DIR/server.log" 2>/dev/null || true
        fi
        rm -rf "$WORK_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")"
if [[ -n "$BENCH_RAW_DIR" ]]; then
    mkdir -p "$BENCH_RAW_DIR"
    BENCH_RAW_DIR="$(cd "$BENCH_RAW_DIR" && pwd)"
fi

# --------------------------------------------------------------------- oha --
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v oha >/dev/null; then
    log "oha not found; installing oha $OHA_VERSION with cargo (takes a few minutes)"
    (cd "${TMPDIR:-/tmp}" && cargo install oha --locked --version "$OHA_VERSION") >&2 \
        || die "cargo install oha failed"
    command -v oha >/dev/null || die "oha still not on PATH after install"
fi
OHA_HELP="$(oha --help 2>&1)" || die "'oha --help' failed"
OHA_VER="$(oha --version 2>/dev/null | head -n1)"
has_flag() { grep -Eq -- "(^|[ ,])$1([ ,=<]|$)" <<<"$OHA_HELP"; }
for f in -z -c -m -d -T -t --no-tui; do
    has_flag "$f" || die "installed $OHA_VER lacks flag $f; reinstall: cargo install oha --locked --force --version $OHA_VERSION"
done
if has_flag --output-format; then
    OHA_JSON=(--output-format json)
elif has_flag --json; then
    OHA_JSON=(--json)
else
    die "installed $OHA_VER has neither --output-format nor --json"
fi
# Wait for in-flight requests at the deadline instead of aborting them
# (otherwise each connection's last request is cut off and reported as
# "aborted due to deadline"; the report ignores those either way).
OHA_EXTRA=()
if has_flag --wait-ongoing-requests-after-deadline; then
    OHA_EXTRA+=(--wait-ongoing-requests-after-deadline)
fi
if [[ -n "$BENCH_OHA_THREADS" ]]; then
    has_flag --worker-threads || die "installed $OHA_VER has no --worker-threads"
    OHA_EXTRA+=(--worker-threads "$BENCH_OHA_THREADS")
fi
log "using $OHA_VER"

# ------------------------------------------------------------------- build --
if [[ -z "$GATEHOUSE_BIN" ]]; then
    log "cargo build --release -p gatehouse"
    (cd "$REPO_ROOT" && cargo build --release -p gatehouse) >&2 || die "cargo build failed"
    target_dir="${CARGO_TARGET_DIR:-target}"
    [[ "$target_dir" = /* ]] || target_dir="$REPO_ROOT/$target_dir"
    GATEHOUSE_BIN="$target_dir/release/gatehouse"
fi
[[ -x "$GATEHOUSE_BIN" ]] || die "server binary not found or not executable: $GATEHOUSE_BIN"

# ------------------------------------------------------------ start server --
if [[ -z "$BENCH_PORT" ]]; then
    BENCH_PORT="$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')"
fi
BASE="http://127.0.0.1:$BENCH_PORT"
DATA_DIR="$WORK_DIR/data"
mkdir -p "$DATA_DIR"

log "starting $GATEHOUSE_BIN on $BASE (data dir $DATA_DIR)"
# The benchmark measures capacity: the token endpoint's rate limits (per IP: the load generator is one
# address) are turned off unless the caller sets them.
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND:-0}"
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND:-0}"
"$GATEHOUSE_BIN" serve --data-dir "$DATA_DIR" \
    --auth-listen "127.0.0.1:$BENCH_PORT" --issuer "$BASE" \
    </dev/null >"$WORK_DIR/server.log" 2>&1 &
SERVER_PID=$!

ready=0
deadline=$((SECONDS + BENCH_READY_TIMEOUT + 1))
for ((i = 0; i < BENCH_READY_TIMEOUT * 5 && SECONDS < deadline; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited during startup"
    code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true)"
    if [[ "$code" == 200 ]]; then ready=1; break; fi
    sleep 0.2
done
[[ $ready -eq 1 ]] || die "server not ready (GET /readyz != 200) within ${BENCH_READY_TIMEOUT}s"
log "server ready (pid $SERVER_PID)"

# http METHOD PATH OUTFILE [curl args...] -> prints the HTTP status code
http() {
    local method="$1" path="$2" out="$3"
    shift 3
    curl --noproxy '*' -sS --max-time 30 -X "$method" -o "$out" -w '%{http_code}' "$@" "$BASE$path"
}

# json_field FILE KEY -> prints the string value of a top-level key
json_field() {
    python3 - "$1" "$2" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    v = json.load(f).get(sys.argv[2])
if not isinstance(v, str) or not v:
    sys.exit(1)
print(v)
PY
}

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
    code="$(http POST /oauth2/register "$WORK_DIR/client.json" \
        -H 'Content-Type: application/json' \
        --data '{"client_name":"bench","grant_types":["client_credentials"],"scope":"rates:read"}')"
    [[ "$code" == 201 ]] || die "POST /oauth2/register returned $code: $(head -c 500 "$WORK_DIR/client.json")"
    CLIENT_ID="$(json_field "$WORK_DIR/client.json" client_id)" || die "no client_id in registration response"
    CLIENT_SECRET="$(json_field "$WORK_DIR/client.json" client_secret)" || die "no client_secret in registration response"
    CC_BODY="$(form_body grant_type=client_credentials "client_id=$CLIENT_ID" "client_secret=$CLIENT_SECRET")" \
        || die "could not build the client_credentials form body"
    log "registered client $CLIENT_ID"
fi

if want_grant password; then
    code="$(http POST /users "$WORK_DIR/user.json" \
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
    code="$(http POST /oauth2/token "$WORK_DIR/check.json" \
        -H 'Content-Type: application/x-www-form-urlencoded' --data "$(body_for "$g")")"
    [[ "$code" == 200 ]] || die "$g grant returned $code: $(head -c 500 "$WORK_DIR/check.json")"
    json_field "$WORK_DIR/check.json" access_token >/dev/null || die "$g grant: no access_token in response"
    log "$g grant answers 200 with an access_token"
done

# --------------------------------------------------------------------- run --
# run_oha OUTFILE SECONDS CONCURRENCY BODY
# oha runs in the background and the shell `wait`s for it, so that Ctrl-C or
# SIGTERM reaches the traps at once (cleanup then stops oha and the server).
run_oha() {
    local out="$1" secs="$2" conc="$3" body="$4" rc=0
    # Hard bound on top of -z: duration + per-request timeout + slack.
    timeout --kill-after=5 "$((secs + BENCH_REQUEST_TIMEOUT + 30))" \
        oha --no-tui "${OHA_JSON[@]}" "${OHA_EXTRA[@]}" \
            -z "${secs}s" -c "$conc" -t "${BENCH_REQUEST_TIMEOUT}s" \
            -m POST -T application/x-www-form-urlencoded -d "$body" \
            "$BASE/oauth2/token" >"$out" 2>"$out.err" </dev/null &
    OHA_PID=$!
    wait "$OHA_PID" || rc=$?
    OHA_PID=""
    if [[ $rc -ne 0 ]]; then
        cat "$out.err" >&2
        die "oha exited with status $rc (see above)"
    fi
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
    timeout --kill-after=5 "$((secs + BENCH_REQUEST_TIMEOUT + 30))" \
        oha --no-tui "${OHA_JSON[@]}" "${OHA_EXTRA[@]}" \
            -z "${secs}s" -c 64 -t "${BENCH_REQUEST_TIMEOUT}s" \
            -m POST -T application/x-www-form-urlencoded -d "$PW_BODY" \
            "$BASE/oauth2/token" >"$WORK_DIR/oha-mixed-flood.json" 2>"$WORK_DIR/oha-mixed-flood.err" </dev/null &
    FLOOD_PID=$!
    sleep 1   # let the flood fill the hashing queue first
    run_oha "$WORK_DIR/oha-mixed-cc.json" "$((secs > 2 ? secs - 2 : 1))" 1 "$CC_BODY"
    wait "$FLOOD_PID" || die "the password flood's oha failed"
    FLOOD_PID=""
    printf '%s\t%s\t%s\n' "password (flood)" 64 "$WORK_DIR/oha-mixed-flood.json" >>"$RESULTS"
    printf '%s\t%s\t%s\n' "client_credentials (beside the flood)" 1 "$WORK_DIR/oha-mixed-cc.json" >>"$RESULTS"
fi

SERVER_RSS="$(awk '/^VmHWM:/ {printf "%.1f MiB", $2/1024}' "/proc/$SERVER_PID/status" 2>/dev/null || true)"

# ------------------------------------------------------------------ report --
cpu_model="$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
mem_total="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || true)"
git_rev="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    git_rev="$git_rev (dirty)"
fi

REPORT="$WORK_DIR/report.md"
{
    echo "## Token endpoint benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- commit: $git_rev"
    echo "- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, ${mem_total:-unknown} RAM"
    echo "- kernel: $(uname -srm)"
    echo "- load generator: $OHA_VER on the same machine (shares the CPUs with the server)"
    echo "- durations: client_credentials ${BENCH_SECONDS}s, password ${BENCH_PASSWORD_SECONDS}s per level, after a ${BENCH_WARMUP_SECONDS}s warm-up per grant"
    echo "- server: store ${GATEHOUSE_DATABASE_URL:+PostgreSQL (GATEHOUSE_DATABASE_URL)}${GATEHOUSE_DATABASE_URL:-embedded SQLite}${GATEHOUSE_CONFIG:+, config $GATEHOUSE_CONFIG}, log filter ${GATEHOUSE_LOG:-info (default)}, peak RSS ${SERVER_RSS:-n/a}"
    echo
    python3 - "$RESULTS" <<'PY'
import json, sys

DEADLINE = "aborted due to deadline"

def ms(v):
    return "n/a" if v is None else f"{v * 1000:.2f}"

print("| grant | concurrency | requests | requests/s (200) | p50 ms | p99 ms | success rate (non-200) |")
print("|---|---:|---:|---:|---:|---:|---:|")
with open(sys.argv[1]) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
for grant, conc, path in rows:
    with open(path) as f:
        d = json.load(f)
    status = {str(k): int(v) for k, v in (d.get("statusCodeDistribution") or {}).items()}
    errors = {k: int(v) for k, v in (d.get("errorDistribution") or {}).items() if k != DEADLINE}
    ok = status.get("200", 0)
    attempts = sum(status.values()) + sum(errors.values())
    bad = attempts - ok
    total_s = float(d["summary"]["total"])
    rps = ok / total_s if total_s > 0 else 0.0
    pct = d.get("latencyPercentiles") or {}
    rate = f"{100.0 * ok / attempts:.2f}%" if attempts else "n/a"
    detail = ""
    if bad:
        parts = [f"{k}: {v}" for k, v in sorted(status.items()) if k != "200"]
        parts += [f"{k}: {v}" for k, v in sorted(errors.items())]
        detail = " [" + "; ".join(parts) + "]"
    print(f"| {grant} | {conc} | {attempts} | {rps:.1f} | {ms(pct.get('p50'))} | "
          f"{ms(pct.get('p99'))} | {rate} ({bad}){detail} |")
PY
    echo
    echo "requests/s counts 200 responses only; p50/p99 are over all responses."
} >"$REPORT"

cat "$REPORT"
if [[ -n "$BENCH_OUT" ]]; then
    cp "$REPORT" "$BENCH_OUT"
    log "report written to $BENCH_OUT"
fi
