#!/usr/bin/env bash
# Revocation propagation benchmark: how long a revoked token keeps working at a running gateway,
# while idle and while several clients sustain a flood of revocations, on SQLite and on
# PostgreSQL with two auth nodes.
#
# The measuring is done by `revocation-bench` (crates/gatehouse-bench): a flood of token +
# revoke pairs, a probe that revokes a fresh token at auth node A and polls a gateway until it
# answers 401, and watchers that send valid tokens and count every answer that is not 200.
# Scenarios:
#
#   sqlite:   one `gatehouse serve` (auth + gateway); idle, then flood, during which a second,
#             standalone gateway is started, timed to readiness, and probed too.
#   postgres: a throwaway PostgreSQL, two `gatehouse auth` nodes A and B on it, a gateway
#             following node B's revocation feed; the flood is spread over A and B, the probe
#             revokes at A; idle, then flood with a second gateway started during it.
#
# A Markdown report goes to stdout. All traffic goes to 127.0.0.1 only; every step is bounded in
# time. See bench/README.md for the environment knobs.
set -euo pipefail

# ---------------------------------------------------------------- settings --
BENCH_SCENARIOS="${BENCH_SCENARIOS:-sqlite postgres}"
BENCH_SECONDS="${BENCH_SECONDS:-25}"                 # measured flood, per scenario
BENCH_IDLE_SECONDS="${BENCH_IDLE_SECONDS:-10}"       # measured idle run, per scenario
BENCH_WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-3}"    # flood before probes start
BENCH_RATE="${BENCH_RATE:-1000}"                     # revocations/s in total
BENCH_FLOOD_CLIENTS="${BENCH_FLOOD_CLIENTS:-4}"
BENCH_LATE_AFTER="${BENCH_LATE_AFTER:-5}"            # s into the measured flood: 2nd gateway
BENCH_PROBE_INTERVAL_MS="${BENCH_PROBE_INTERVAL_MS:-250}"
BENCH_POLL_MS="${BENCH_POLL_MS:-5}"
BENCH_PROBE_TIMEOUT="${BENCH_PROBE_TIMEOUT:-10}"     # s, a probe not enforced by then: timeout
BENCH_WATCH_RATE="${BENCH_WATCH_RATE:-50}"           # valid-token requests/s per gateway
BENCH_OUT="${BENCH_OUT:-}"
BENCH_RAW_DIR="${BENCH_RAW_DIR:-}"
BENCH_READY_TIMEOUT="${BENCH_READY_TIMEOUT:-30}"     # s, each server's start
BENCH_INSTALL_TIMEOUT="${BENCH_INSTALL_TIMEOUT:-600}" # s, apt-get for PostgreSQL
BENCH_PG_OPTIONS="${BENCH_PG_OPTIONS:-}"             # extra `postgres` flags, e.g. "-c fsync=off"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-}"                   # set => skip building the server
BENCH_TOOL_BIN="${BENCH_TOOL_BIN:-}"                 # set => skip building revocation-bench
# lib.sh expects these (oha is not used here).
BENCH_REQUEST_TIMEOUT=30
OHA_PID=""
export GATEHOUSE_LOG="${GATEHOUSE_LOG:-warn}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

require_uint BENCH_SECONDS BENCH_IDLE_SECONDS BENCH_WARMUP_SECONDS BENCH_RATE \
             BENCH_FLOOD_CLIENTS BENCH_LATE_AFTER BENCH_PROBE_INTERVAL_MS BENCH_POLL_MS \
             BENCH_PROBE_TIMEOUT BENCH_WATCH_RATE BENCH_READY_TIMEOUT BENCH_INSTALL_TIMEOUT
[[ "$BENCH_SECONDS" -gt 0 ]] || die "BENCH_SECONDS must be > 0"
[[ "$BENCH_RATE" -eq 0 || "$BENCH_FLOOD_CLIENTS" -gt 0 ]] || die "BENCH_FLOOD_CLIENTS must be > 0"
[[ "$BENCH_PROBE_INTERVAL_MS" -gt 0 && "$BENCH_POLL_MS" -gt 0 ]] || die "probe and poll intervals must be > 0"
[[ "$BENCH_LATE_AFTER" -lt "$BENCH_SECONDS" ]] || die "BENCH_LATE_AFTER must be less than BENCH_SECONDS"
read -r -a SCENARIOS <<<"$BENCH_SCENARIOS"
[[ ${#SCENARIOS[@]} -gt 0 ]] || die "BENCH_SCENARIOS is empty"
for s in "${SCENARIOS[@]}"; do
    case "$s" in sqlite|postgres) ;; *) die "unknown scenario '$s' in BENCH_SCENARIOS" ;; esac
done
require_tools

# ------------------------------------------------------------ cleanup trap --
WORK_DIR=""
UPSTREAM_PID=""
TOOL_PID=""
PIDS=()          # gatehouse processes of the current scenario, stopped in reverse order
NAMES=()
LOGS=()          # every gatehouse log, relative to WORK_DIR, kept on failure
PG_BIN=""
PG_ROOT=""
run_pg() { "$@"; }

stop_scenario() {
    local i
    stop_process "$TOOL_PID" "revocation-bench"
    TOOL_PID=""
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_process "${PIDS[$i]}" "${NAMES[$i]}"
    done
    PIDS=()
    NAMES=()
    stop_pg
}

stop_pg() {
    if [[ -n "$PG_ROOT" && -d "$PG_ROOT/data" ]]; then
        run_pg timeout 60 "$PG_BIN/pg_ctl" -D "$PG_ROOT/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    if [[ -n "$PG_ROOT" ]]; then
        rm -rf "$PG_ROOT"
        PG_ROOT=""
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_scenario
    stop_process "$UPSTREAM_PID" "the upstream"
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        local f
        for f in "${LOGS[@]}"; do
            keep_log "$rc" "$f" 30 "$f"
        done
        if [[ -n "$BENCH_RAW_DIR" ]]; then
            cp "$WORK_DIR"/run-*.out "$BENCH_RAW_DIR/" 2>/dev/null || true
        fi
        rm -rf "$WORK_DIR"
    fi
    exit "$rc"
}
set_traps
make_work_dir gatehouse-bench-rev

# ------------------------------------------------------------------- build --
BIN_GIVEN="$GATEHOUSE_BIN"
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

# ------------------------------------------------------------- rate limits --
# The flood comes from one address and a few clients, far above the default per-IP and
# per-client limits: they are turned off (0), as are registration limits (the tool registers a
# few clients per run). Limits on POST /oauth2/revoke are set high when this build has any:
# the configuration refuses an unknown [rate_limits] field with the list of the known ones,
# and every known one with "revo" in its name is set to 1000000 (unless set already).
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND:-0}"
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND="${GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND:-0}"
export GATEHOUSE_RATE_LIMITS__REGISTRATION_PER_IP_PER_MINUTE="${GATEHOUSE_RATE_LIMITS__REGISTRATION_PER_IP_PER_MINUTE:-0}"
limit_fields="$(env GATEHOUSE_RATE_LIMITS__BENCH_NO_SUCH_FIELD=1 timeout 30 "$GATEHOUSE_BIN" admin \
    --data-dir "$WORK_DIR/config-check" keys list </dev/null 2>&1 >/dev/null || true)"
rm -rf "$WORK_DIR/config-check"
grep -q 'bench_no_such_field' <<<"$limit_fields" \
    || die "could not list the [rate_limits] settings: $(head -c 500 <<<"$limit_fields")"
REVOKE_LIMITS=()
while read -r name; do
    [[ -n "$name" && "$name" != bench_no_such_field ]] || continue
    var="GATEHOUSE_RATE_LIMITS__${name^^}"
    if [[ -n "${!var:-}" ]]; then
        REVOKE_LIMITS+=("$name=${!var}")
    else
        export "$var=1000000"
        REVOKE_LIMITS+=("$name=1000000")
    fi
done < <(grep -oE '`[a-z_]+`' <<<"$limit_fields" | tr -d '`' | grep revo | sort -u || true)
if [[ ${#REVOKE_LIMITS[@]} -eq 0 ]]; then
    REVOKE_LIMIT_NOTE="this build has no rate-limit setting for POST /oauth2/revoke (none set)"
else
    REVOKE_LIMIT_NOTE="revocation rate limits: ${REVOKE_LIMITS[*]}"
fi
log "$REVOKE_LIMIT_NOTE"

# ---------------------------------------------------------------- upstream --
# One trivial upstream (200 "ok") behind every gateway's route, shared by all scenarios.
read -r UPSTREAM_PORT < <(free_ports 1) || true
[[ -n "${UPSTREAM_PORT:-}" ]] || die "could not pick a free port"
UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT"
"$BENCH_TOOL_BIN" upstream --listen "127.0.0.1:$UPSTREAM_PORT" </dev/null >"$WORK_DIR/upstream.log" 2>&1 &
UPSTREAM_PID=$!
LOGS+=(upstream.log)
wait_for_200 "the upstream" "$UPSTREAM/" "$UPSTREAM_PID"
BENCH_PATH="/bench/x"
ROUTE="[[route]]
name = \"bench\"
prefix = \"/bench\"
upstream = \"$UPSTREAM\"
methods = [\"GET\"]
scopes = { GET = [\"rates:read\"] }"
printf '%s\n' "$ROUTE" >"$WORK_DIR/routes.toml"

# ---------------------------------------------------------------- helpers --
# start NAME LOG CMD...: starts a gatehouse process in the background, remembered for cleanup.
start() {
    local name="$1" logfile="$2"
    shift 2
    "$@" </dev/null >"$WORK_DIR/$logfile" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    NAMES+=("$name")
    LOGS+=("$logfile")
}

# feed_client NAME ADMIN_ARGS...: a confidential client with revocations:read, made with
# `gatehouse admin` on the scenario's store (with the environment in ADMIN_ENV); sets FEED_ID
# and FEED_SECRET.
ADMIN_ENV=(env)
feed_client() {
    local name="$1" out="$WORK_DIR/feed-client-$1.json"
    shift
    timeout 60 "${ADMIN_ENV[@]}" "$GATEHOUSE_BIN" admin "$@" client create --name "$name" --scope revocations:read \
        </dev/null >"$out" 2>"$out.err" || die "gatehouse admin client create failed: $(head -c 500 "$out.err")"
    FEED_ID="$(json_field "$out" client_id)" || die "no client_id from gatehouse admin"
    FEED_SECRET="$(json_field "$out" client_secret)" || die "no client_secret from gatehouse admin"
}

# gateway_config FILE ISSUER FEED_ID: a standalone gateway's file with the bench route.
gateway_config() {
    printf '[gateway]\nissuer = "%s"\nfeed_client_id = "%s"\n\n%s\n' "$2" "$3" "$ROUTE" >"$1"
}

# now_ms: milliseconds since the epoch.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run_tool LABEL ARGS...: one revocation-bench run in the foreground (killable by the traps);
# its output goes to run-LABEL.out.
run_tool() {
    local label="$1" rc=0 bound
    shift
    bound=$((BENCH_WARMUP_SECONDS + BENCH_SECONDS + BENCH_IDLE_SECONDS + BENCH_PROBE_TIMEOUT + 120))
    timeout --kill-after=5 "$bound" "$BENCH_TOOL_BIN" run --label "$label" \
        --probe-interval-ms "$BENCH_PROBE_INTERVAL_MS" --poll-interval-ms "$BENCH_POLL_MS" \
        --probe-timeout-secs "$BENCH_PROBE_TIMEOUT" --watch-rate "$BENCH_WATCH_RATE" \
        --ready-timeout-secs "$BENCH_READY_TIMEOUT" --path "$BENCH_PATH" --scope rates:read \
        "$@" </dev/null >"$WORK_DIR/run-$label.out" 2>"$WORK_DIR/run-$label.err" &
    TOOL_PID=$!
    wait "$TOOL_PID" || rc=$?
    TOOL_PID=""
    cat "$WORK_DIR/run-$label.err" >&2
    [[ $rc -eq 0 ]] || die "revocation-bench ($label) exited with status $rc"
    grep -v '^{' "$WORK_DIR/run-$label.out" | sed 's/^/[bench]   /' >&2 || true
    grep '^{' "$WORK_DIR/run-$label.out" | tail -n 1 >>"$WORK_DIR/results.jsonl"
}

# flood_with_late_gateway LABEL LATE_NAME LATE_PORT LATE_CONFIG FEED_SECRET TOOL_ARGS...:
# the flood run; BENCH_LATE_AFTER seconds into it a standalone gateway starts on LATE_PORT, and
# the time from its launch to its first 200 on /_gatehouse/readyz is recorded.
flood_with_late_gateway() {
    local label="$1" late_name="$2" late_port="$3" late_config="$4" secret="$5" rc=0 bound
    shift 5
    local late_url="http://127.0.0.1:$late_port"
    bound=$((BENCH_WARMUP_SECONDS + BENCH_SECONDS + BENCH_PROBE_TIMEOUT + 120))
    timeout --kill-after=5 "$bound" "$BENCH_TOOL_BIN" run --label "$label" \
        --probe-interval-ms "$BENCH_PROBE_INTERVAL_MS" --poll-interval-ms "$BENCH_POLL_MS" \
        --probe-timeout-secs "$BENCH_PROBE_TIMEOUT" --watch-rate "$BENCH_WATCH_RATE" \
        --ready-timeout-secs "$BENCH_READY_TIMEOUT" --path "$BENCH_PATH" --scope rates:read \
        --duration-secs "$BENCH_SECONDS" --flood-warmup-secs "$BENCH_WARMUP_SECONDS" \
        --flood-rate "$BENCH_RATE" --flood-clients "$BENCH_FLOOD_CLIENTS" \
        --late-gateway "$late_name=$late_url" "$@" \
        </dev/null >"$WORK_DIR/run-$label.out" 2>"$WORK_DIR/run-$label.err" &
    TOOL_PID=$!
    # The tool registers its clients and waits for the gateways first: start counting once the
    # flood is under way (its first progress line comes later; the registrations take < 1 s).
    sleep $((BENCH_WARMUP_SECONDS + BENCH_LATE_AFTER + 1))
    kill -0 "$TOOL_PID" 2>/dev/null || { cat "$WORK_DIR/run-$label.err" >&2; die "revocation-bench ($label) ended early"; }
    log "$label: starting the second gateway ($late_name) on $late_url during the flood"
    local launched ready_ms="" code
    launched="$(now_ms)"
    start "the second gateway" "gateway-$late_name.log" \
        env GATEHOUSE_GATEWAY_CLIENT_SECRET="$secret" \
        "$GATEHOUSE_BIN" gateway --config "$late_config" --listen "127.0.0.1:$late_port"
    local late_pid="$STARTED_PID"
    while (($(now_ms) - launched < BENCH_READY_TIMEOUT * 1000)); do
        kill -0 "$late_pid" 2>/dev/null || break
        code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 1 "$late_url/_gatehouse/readyz" || true)"
        if [[ "$code" == 200 ]]; then
            ready_ms=$(($(now_ms) - launched))
            break
        fi
        sleep 0.02
    done
    if [[ -n "$ready_ms" ]]; then
        log "$label: $late_name ready ${ready_ms} ms after its launch"
    else
        log "$label: $late_name NOT ready within ${BENCH_READY_TIMEOUT}s of its launch"
    fi
    printf '%s\t%s\t%s\n' "$label" "$late_name" "${ready_ms:-}" >>"$WORK_DIR/ready.tsv"
    wait "$TOOL_PID" || rc=$?
    TOOL_PID=""
    cat "$WORK_DIR/run-$label.err" >&2
    [[ $rc -eq 0 ]] || die "revocation-bench ($label) exited with status $rc"
    grep -v '^{' "$WORK_DIR/run-$label.out" | sed 's/^/[bench]   /' >&2 || true
    grep '^{' "$WORK_DIR/run-$label.out" | tail -n 1 >>"$WORK_DIR/results.jsonl"
}

: >"$WORK_DIR/results.jsonl"
: >"$WORK_DIR/ready.tsv"

# --------------------------------------------------------------- sqlite --
scenario_sqlite() {
    local auth_port gw_port late_port
    read -r auth_port gw_port late_port < <(free_ports 3) || true
    [[ -n "${late_port:-}" ]] || die "could not pick free ports"
    local auth="http://127.0.0.1:$auth_port" gw="http://127.0.0.1:$gw_port"
    local data="$WORK_DIR/sqlite-data"
    mkdir -p "$data"
    log "sqlite: starting gatehouse serve (auth $auth, gateway $gw, no apps)"
    start "gatehouse serve" sqlite-serve.log \
        env GATEHOUSE_APPS__ENABLED=false \
        "$GATEHOUSE_BIN" serve --data-dir "$data" --auth-listen "127.0.0.1:$auth_port" \
        --issuer "$auth" --gateway-listen "127.0.0.1:$gw_port" \
        --gateway-routes "$WORK_DIR/routes.toml"
    local serve_pid="$STARTED_PID"
    wait_for_200 "gatehouse serve" "$auth/readyz" "$serve_pid"
    wait_for_200 "serve's gateway" "$gw/_gatehouse/readyz" "$serve_pid"

    feed_client bench-late-gateway --data-dir "$data"
    gateway_config "$WORK_DIR/sqlite-late.toml" "$auth" "$FEED_ID"

    log "sqlite: idle propagation (${BENCH_IDLE_SECONDS}s)"
    run_tool sqlite-idle --auth "$auth" --gateway "serve=$gw" \
        --flood-rate 0 --duration-secs "$BENCH_IDLE_SECONDS"
    log "sqlite: flood of $BENCH_RATE revocations/s (${BENCH_WARMUP_SECONDS}s warm-up + ${BENCH_SECONDS}s)"
    flood_with_late_gateway sqlite-flood late "$late_port" "$WORK_DIR/sqlite-late.toml" "$FEED_SECRET" \
        --auth "$auth" --gateway "serve=$gw"
    kill -0 "$serve_pid" 2>/dev/null || die "gatehouse serve exited during the run"
    stop_scenario
}

# ------------------------------------------------------------- postgres --
find_pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

start_pg() {
    PG_BIN="$(find_pg_bin || true)"
    if [[ -z "$PG_BIN" ]]; then
        log "PostgreSQL not found: installing it with apt-get"
        [[ "$(id -u)" -eq 0 ]] || die "PostgreSQL is missing and installing it needs root (apt-get install postgresql)"
        command -v apt-get >/dev/null || die "PostgreSQL is missing and apt-get is not available"
        export DEBIAN_FRONTEND=noninteractive
        timeout "$BENCH_INSTALL_TIMEOUT" apt-get update -qq >&2 || die "apt-get update failed"
        timeout "$BENCH_INSTALL_TIMEOUT" apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
            || die "apt-get install postgresql failed"
        PG_BIN="$(find_pg_bin)" || die "PostgreSQL still not found after install"
    fi
    PG_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-pg.XXXXXX")"
    if [[ "$(id -u)" -eq 0 ]]; then
        # initdb refuses to run as root: use the unprivileged postgres account (made if missing).
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
        chown postgres "$PG_ROOT"
        run_pg() { runuser -u postgres -- "$@"; }
    fi
    PG_PORT="$(free_ports 1)"
    PG_VERSION="$("$PG_BIN/postgres" --version)"
    log "postgres: starting a throwaway $PG_VERSION on 127.0.0.1:$PG_PORT"
    run_pg timeout 120 "$PG_BIN/initdb" -D "$PG_ROOT/data" -U postgres --auth=trust -E UTF8 >/dev/null \
        || die "initdb failed"
    # shellcheck disable=SC2086  # BENCH_PG_OPTIONS is a list of flags
    run_pg timeout 90 "$PG_BIN/pg_ctl" -D "$PG_ROOT/data" -l "$PG_ROOT/log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_ROOT -c listen_addresses=127.0.0.1 -c max_connections=300 $BENCH_PG_OPTIONS" \
        start >/dev/null || { tail -n 20 "$PG_ROOT/log" >&2 || true; die "PostgreSQL did not start"; }
    PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

scenario_postgres() {
    start_pg
    local a_port b_port gw_port late_port
    read -r a_port b_port gw_port late_port < <(free_ports 4) || true
    [[ -n "${late_port:-}" ]] || die "could not pick free ports"
    local node_a="http://127.0.0.1:$a_port" node_b="http://127.0.0.1:$b_port"
    local gw="http://127.0.0.1:$gw_port"
    # One issuer for both nodes, as behind a load balancer: node B's URL, so that the gateways,
    # which discover the keys and the feed from the issuer, follow node B. Tokens from node A
    # carry the same `iss`.
    local issuer="$node_b"
    local kek
    kek="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
    local pg=(env "GATEHOUSE_KEK=$kek" "GATEHOUSE_DATABASE_URL=$PG_URL")

    log "postgres: starting auth nodes A ($node_a) and B ($node_b), issuer $issuer"
    start "auth node A" pg-auth-a.log "${pg[@]}" "$GATEHOUSE_BIN" auth --data-dir "$WORK_DIR/pg-a" \
        --auth-listen "127.0.0.1:$a_port" --issuer "$issuer"
    local a_pid="$STARTED_PID"
    wait_for_200 "auth node A" "$node_a/readyz" "$a_pid"
    start "auth node B" pg-auth-b.log "${pg[@]}" "$GATEHOUSE_BIN" auth --data-dir "$WORK_DIR/pg-b" \
        --auth-listen "127.0.0.1:$b_port" --issuer "$issuer"
    local b_pid="$STARTED_PID"
    wait_for_200 "auth node B" "$node_b/readyz" "$b_pid"

    ADMIN_ENV=("${pg[@]}")
    feed_client bench-gateway --data-dir "$WORK_DIR/pg-admin"
    local gw_secret="$FEED_SECRET"
    gateway_config "$WORK_DIR/pg-gateway.toml" "$issuer" "$FEED_ID"
    # The gateways need no key-encryption key: only their feed client's secret.
    feed_client bench-late-gateway --data-dir "$WORK_DIR/pg-admin"
    ADMIN_ENV=(env)
    gateway_config "$WORK_DIR/pg-late.toml" "$issuer" "$FEED_ID"

    log "postgres: starting the gateway on $gw (follows node B)"
    start "the gateway" pg-gateway.log env GATEHOUSE_GATEWAY_CLIENT_SECRET="$gw_secret" \
        "$GATEHOUSE_BIN" gateway --config "$WORK_DIR/pg-gateway.toml" --listen "127.0.0.1:$gw_port"
    local gw_pid="$STARTED_PID"
    wait_for_200 "the gateway" "$gw/_gatehouse/readyz" "$gw_pid"

    log "postgres: idle propagation (${BENCH_IDLE_SECONDS}s), revoking at A, gateway on B"
    run_tool postgres-idle --auth "$node_a" --probe-auth "$node_a" --gateway "gw-b=$gw" \
        --flood-rate 0 --duration-secs "$BENCH_IDLE_SECONDS"
    log "postgres: flood of $BENCH_RATE revocations/s over A and B (${BENCH_WARMUP_SECONDS}s warm-up + ${BENCH_SECONDS}s)"
    flood_with_late_gateway postgres-flood late-b "$late_port" "$WORK_DIR/pg-late.toml" "$FEED_SECRET" \
        --auth "$node_a" --auth "$node_b" --probe-auth "$node_a" --gateway "gw-b=$gw"
    local pid
    for pid in "$a_pid" "$b_pid" "$gw_pid"; do
        kill -0 "$pid" 2>/dev/null || die "a gatehouse process exited during the run"
    done
    stop_scenario
}

for s in "${SCENARIOS[@]}"; do
    "scenario_$s"
done

# ------------------------------------------------------------------ report --
REPORT="$WORK_DIR/report.md"
{
    echo "## Revocation propagation"
    echo
    machine_lines
    if [[ -n "$BIN_GIVEN" ]]; then
        echo "- server binary: \`$BIN_GIVEN\` (GATEHOUSE_BIN; not built from this tree, so the commit above may not be its source)"
    fi
    echo "- tool: \`revocation-bench\` (crates/gatehouse-bench) on the same machine; it, the servers, the gateways and PostgreSQL share the $(nproc) CPUs"
    echo "- flood: $BENCH_FLOOD_CLIENTS self-registered clients, each looping client_credentials token → POST /oauth2/revoke, paced to $BENCH_RATE revocations/s in total (${BENCH_WARMUP_SECONDS}s warm-up, then ${BENCH_SECONDS}s measured); idle runs: ${BENCH_IDLE_SECONDS}s without a flood"
    echo "- probe: every ${BENCH_PROBE_INTERVAL_MS} ms a fresh token from node A must get 200 at each gateway, is revoked at node A, then is sent every ${BENCH_POLL_MS} ms until the gateway answers 401; propagation = revoke answer → first 401; timeout after ${BENCH_PROBE_TIMEOUT}s"
    echo "- watchers: ${BENCH_WATCH_RATE} requests/s with a valid token (renewed every 5 s) per gateway, from the flood's start (late gateway: from its readiness)"
    echo "- sqlite: one \`gatehouse serve\` (apps off) and its gateway; the second gateway is a standalone \`gatehouse gateway\` on the same issuer, started ${BENCH_LATE_AFTER}s into the measured flood"
    if [[ " ${SCENARIOS[*]} " == *" postgres "* ]]; then
        echo "- postgres: ${PG_VERSION:-PostgreSQL}, default durability${BENCH_PG_OPTIONS:+, options \`$BENCH_PG_OPTIONS\`}; two \`gatehouse auth\` nodes A and B with one issuer (B's URL); gateways follow node B's feed; the flood alternates between A and B, the probe revokes at A"
    fi
    echo "- upstream: a trivial HTTP server (\`revocation-bench upstream\`); route \`/bench\` needs \`rates:read\`; GATEHOUSE_LOG=$GATEHOUSE_LOG"
    echo "- rate limits: token and registration limits off; $REVOKE_LIMIT_NOTE"
    echo
    python3 - "$WORK_DIR/results.jsonl" "$WORK_DIR/ready.tsv" "$BENCH_PROBE_TIMEOUT" <<'PY'
import json, sys

runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ready = {}
for line in open(sys.argv[2]):
    label, name, ms = (line.rstrip("\n").split("\t") + ["", "", ""])[:3]
    ready[(label, name)] = ms
timeout_s = sys.argv[3]

def ms(v, timeouts):
    if v is None:
        return f"> {timeout_s} s" if timeouts else "n/a"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"

def tally(d):
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) or "none"

print("| store | phase | gateway | ready after launch | revocations/s (target) | probes | enforced | timeouts | p50 | p99 | max | valid-token requests | not 200 | 503s |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
budget_ok = True
total_503 = 0
notes = []
for r in runs:
    store, _, phase = r["label"].partition("-")
    f = r.get("flood")
    rate = f"{f['achieved_rate']:.0f} ({f['target_rate']:.0f})" if f else "idle"
    if f and (f["errors"] or f["skipped"]):
        notes.append(f"{r['label']}: flood failures {tally(f['errors'])}; skipped {f['skipped']}")
    p = r["probe"]
    if p["token_errors"] or p["revoke_errors"] or p["watch_token_errors"]:
        notes.append(f"{r['label']}: probe token failures {tally(p['token_errors'])}; revoke failures {tally(p['revoke_errors'])}; watcher token failures {tally(p['watch_token_errors'])}")
    for g in r["gateways"]:
        if g["late"]:
            rd = ready.get((r["label"], g["name"]), "")
            ready_cell = f"{int(rd)} ms" if rd else "never"
            name = f"{g['name']} (started during the flood)"
        else:
            ready_cell = "–"
            name = g["name"]
        budget_ok &= bool(g["p99_within_1s"])
        total_503 += g["valid_503"]
        non200 = tally(g["valid_non200"])
        print(f"| {store} | {phase} | {name} | {ready_cell} | {rate} | {g['probes']} | {g['enforced']} | "
              f"{g['timeouts']} | {ms(g['p50_ms'], g['timeouts'])} | {ms(g['p99_ms'], g['timeouts'])} | "
              f"{ms(g['max_ms'], g['timeouts'])} | {g['valid_requests']} | {non200} | {g['valid_503']} |")
        if g["poll_other"]:
            notes.append(f"{r['label']} {g['name']}: polling a revoked token also got {tally(g['poll_other'])}")
print()
print("propagation = from the revoke call's answer at node A to the gateway's first 401 for that token "
      f"(polled every few ms); a probe still accepted after {timeout_s} s is a timeout and counts as "
      "slower than any measured one in p50/p99/max. \"not 200\" counts every answer to a valid token "
      "other than 200, by status.")
print()
print(f"Budget: p99 ≤ 1 s at every gateway: {'met' if budget_ok else 'NOT met'}; "
      f"503s to valid tokens: {total_503} ({'met' if total_503 == 0 else 'NOT met'}).")
if notes:
    print()
    for n in notes:
        print(f"- {n}")
PY
} >"$REPORT"
publish_report "$REPORT"
