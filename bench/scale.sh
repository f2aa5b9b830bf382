#!/usr/bin/env bash
# Gatehouse at scale: a store seeded with a million clients, a million users, ten million audit
# events (and later a million revoked, unexpired token ids), then the load.
#
# For each backend (SQLite always; PostgreSQL when BENCH_POSTGRES_URL is set, in a database of its
# own that is dropped at the end): the real binary makes the schema, a template user (whose argon2
# hash every seeded user gets), an admin and the gateway's feed client; `revocation-bench seed`
# fills the store; then it measures
#   - `gatehouse auth`'s start-up time to ready (/readyz 200) and its resident memory;
#   - client_credentials tokens/s, p50/p99 and server CPU µs per token, from one client and
#     cycling over BENCH_DISTINCT_CLIENTS clients (client cache misses), same server, same run;
#   - p99 of the admin lists (clients, users, audit events with filters) and of sign-up;
#   - a standalone gateway's start-up, memory and requests/s before and after
#     BENCH_REVOKED revoked token ids are added to its view, and that a revoked token is refused.
# Prints a Markdown report on stdout; progress on stderr. See bench/README.md.
set -euo pipefail

# ---------------------------------------------------------------- settings --
BENCH_CLIENTS="${BENCH_CLIENTS:-1000000}"
BENCH_USERS="${BENCH_USERS:-1000000}"
BENCH_AUDIT_EVENTS="${BENCH_AUDIT_EVENTS:-10000000}"
BENCH_REVOKED="${BENCH_REVOKED:-1000000}"
BENCH_DISTINCT_CLIENTS="${BENCH_DISTINCT_CLIENTS:-100000}"
BENCH_SECONDS="${BENCH_SECONDS:-20}"                 # each token run
BENCH_CONCURRENCY="${BENCH_CONCURRENCY:-64}"         # token runs and the gateway run
BENCH_ADMIN_SECONDS="${BENCH_ADMIN_SECONDS:-5}"      # each admin list
BENCH_ADMIN_CONCURRENCY="${BENCH_ADMIN_CONCURRENCY:-4}"
BENCH_SIGNUP_SECONDS="${BENCH_SIGNUP_SECONDS:-10}"
BENCH_SIGNUP_CONCURRENCY="${BENCH_SIGNUP_CONCURRENCY:-4}"
BENCH_GATEWAY_SECONDS="${BENCH_GATEWAY_SECONDS:-10}"
BENCH_BACKENDS="${BENCH_BACKENDS:-}"                 # default: sqlite, plus postgres if the URL is set
BENCH_POSTGRES_URL="${BENCH_POSTGRES_URL:-}"
BENCH_OUT="${BENCH_OUT:-}"
BENCH_RAW_DIR="${BENCH_RAW_DIR:-}"
BENCH_OHA_THREADS="${BENCH_OHA_THREADS:-}"
BENCH_REQUEST_TIMEOUT="${BENCH_REQUEST_TIMEOUT:-60}"
BENCH_READY_TIMEOUT="${BENCH_READY_TIMEOUT:-300}"    # a big store may take a while
OHA_VERSION="${OHA_VERSION:-1.16.0}"
GATEHOUSE_BIN="${GATEHOUSE_BIN:-}"                   # both set => no cargo build
BENCH_TOOL_BIN="${BENCH_TOOL_BIN:-}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

require_uint BENCH_CLIENTS BENCH_USERS BENCH_AUDIT_EVENTS BENCH_REVOKED BENCH_DISTINCT_CLIENTS \
    BENCH_SECONDS BENCH_CONCURRENCY BENCH_ADMIN_SECONDS BENCH_ADMIN_CONCURRENCY \
    BENCH_SIGNUP_SECONDS BENCH_SIGNUP_CONCURRENCY BENCH_GATEWAY_SECONDS \
    BENCH_REQUEST_TIMEOUT BENCH_READY_TIMEOUT
[[ "$BENCH_CLIENTS" -ge 1 && "$BENCH_USERS" -ge 1 ]] || die "BENCH_CLIENTS and BENCH_USERS must be >= 1"
[[ "$BENCH_DISTINCT_CLIENTS" -ge 1 && "$BENCH_DISTINCT_CLIENTS" -le "$BENCH_CLIENTS" ]] \
    || die "BENCH_DISTINCT_CLIENTS must be between 1 and BENCH_CLIENTS"
optional_uint BENCH_OHA_THREADS
if [[ -z "$BENCH_BACKENDS" ]]; then
    BENCH_BACKENDS="sqlite${BENCH_POSTGRES_URL:+ postgres}"
fi
read -r -a BACKENDS <<<"$BENCH_BACKENDS"
for b in "${BACKENDS[@]}"; do
    case "$b" in
        sqlite) ;;
        postgres) [[ -n "$BENCH_POSTGRES_URL" ]] || die "the postgres backend needs BENCH_POSTGRES_URL" ;;
        *) die "unknown backend '$b' in BENCH_BACKENDS (sqlite, postgres)" ;;
    esac
done
require_tools
cpu_setup
# The benchmark measures capacity from one address: the per-IP limits are off.
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_IP_PER_SECOND=0
export GATEHOUSE_RATE_LIMITS__TOKEN_PER_CLIENT_PER_SECOND=0
export GATEHOUSE_RATE_LIMITS__SIGNUP_PER_IP_PER_MINUTE=0
export GATEHOUSE_AUTH__PASSWORD_CHECKS_PER_SOURCE=1000000
export GATEHOUSE_LOG="${GATEHOUSE_LOG:-warn}"

# ------------------------------------------------------------ cleanup trap --
WORK_DIR=""
OHA_PID=""
PIDS=()
PG_DB=""
PG_ADMIN_URL=""
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    stop_oha "$OHA_PID"
    for p in "${PIDS[@]}"; do stop_process "$p" "pid $p"; done
    if [[ -n "$PG_DB" ]]; then
        psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
            || log "could not drop the PostgreSQL database $PG_DB: drop it by hand"
    fi
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        local f
        for f in "$WORK_DIR"/*.log; do
            [[ -e "$f" ]] || continue
            keep_log "$rc" "$(basename "$f")" 20 "$(basename "$f")"
        done
        rm -rf "$WORK_DIR"
    fi
    exit "$rc"
}
set_traps
make_work_dir gatehouse-scale

# ------------------------------------------------------------- oha + build --
setup_oha -z -c -H -t --no-tui
if [[ -z "$GATEHOUSE_BIN" || -z "$BENCH_TOOL_BIN" ]]; then
    log "cargo build --release -p gatehouse -p gatehouse-bench --locked"
    (cd "$REPO_ROOT" && nice -n 5 cargo build --release -p gatehouse -p gatehouse-bench --locked) >&2 \
        || die "cargo build failed"
    target_dir="${CARGO_TARGET_DIR:-target}"
    [[ "$target_dir" = /* ]] || target_dir="$REPO_ROOT/$target_dir"
    GATEHOUSE_BIN="$target_dir/release/gatehouse"
    BENCH_TOOL_BIN="$target_dir/release/revocation-bench"
fi
# Copies, so a rebuild during the run does not change what is measured.
mkdir -p "$WORK_DIR/bin"
cp "$GATEHOUSE_BIN" "$WORK_DIR/bin/gatehouse" || die "cannot copy $GATEHOUSE_BIN"
cp "$BENCH_TOOL_BIN" "$WORK_DIR/bin/revocation-bench" || die "cannot copy $BENCH_TOOL_BIN"
GATEHOUSE_BIN="$WORK_DIR/bin/gatehouse"
BENCH_TOOL_BIN="$WORK_DIR/bin/revocation-bench"

# ----------------------------------------------------------------- helpers --
now_ms() { echo $(($(date +%s%N) / 1000000)); }
load1() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo n/a; }
rss_now() { awk '/^VmRSS:/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status" 2>/dev/null || echo n/a; }

RESULTS="$WORK_DIR/results.tsv"
: >"$RESULTS"
# result BACKEND WHAT VALUE: one line of the report, with the 1-minute load average now.
result() {
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(load1)" >>"$RESULTS"
    log "$1: $2: $3 (load $(load1))"
}

# start NAME LOG CMD...: a process in the background, stopped by cleanup; pid in STARTED_PID.
start() {
    local logfile="$2"
    shift 2
    "$@" </dev/null >"$WORK_DIR/$logfile" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# ready_ms NAME URL PID LAUNCHED_MS: waits for URL to answer 200; prints ms since LAUNCHED_MS.
ready_ms() {
    local name="$1" url="$2" pid="$3" launched="$4" code
    while (($(now_ms) - launched < BENCH_READY_TIMEOUT * 1000)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
        code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)"
        if [[ "$code" == 200 ]]; then
            echo $(($(now_ms) - launched))
            return 0
        fi
        sleep 0.02
    done
    die "$name not ready (GET $url != 200) within ${BENCH_READY_TIMEOUT}s"
}

# tool OUT ARGS...: revocation-bench in the foreground; its JSON line goes to OUT.
tool() {
    local out="$1" rc=0
    shift
    timeout --kill-after=5 3600 "$BENCH_TOOL_BIN" "$@" </dev/null >"$out.txt" 2>"$out.err" || rc=$?
    [[ $rc -eq 0 ]] || { cat "$out.err" "$out.txt" >&2; die "revocation-bench $1 failed ($rc)"; }
    grep -v '^{' "$out.txt" | sed 's/^/[bench]   /' >&2 || true
    grep '^{' "$out.txt" | tail -n 1 >"$out"
}

# jq_py FILE EXPR: a Python expression over the JSON object `d` read from FILE.
jq_py() {
    python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"d": d})
print("n/a" if v is None else v)
PY
}

# token_for CLIENT_N OUT: a client_credentials token of seeded client N, written to OUT.
token_for() {
    local n id secret code
    n="$(printf '%07d' "$1")"
    id="seed-client-$n" secret="seed-secret-$n"
    code="$(http POST "$AUTH/oauth2/token" "$2.json" -u "$id:$secret" \
        -d grant_type=client_credentials -d scope=rates:read)"
    [[ "$code" == 200 ]] || die "seeded client $id got $code: $(head -c 300 "$2.json")"
    json_field "$2.json" access_token >"$2" || die "no access_token for $id"
}

# jti_of TOKEN_FILE: the jti claim of a JWT.
jti_of() {
    python3 - "$1" <<'PY'
import base64, json, sys
p = open(sys.argv[1]).read().strip().split(".")[1]
print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["jti"])
PY
}

# cpu_us_per PID TICKS_BEFORE RESPONSES: server CPU µs per response since TICKS_BEFORE.
cpu_us_per() {
    local ticks
    ticks=$(($(cpu_ticks "$1") - $2))
    python3 -c "import sys; t,h,n=map(int,sys.argv[1:]); print(f'{t*1e6/h/n:.0f}' if n else 'n/a')" \
        "$ticks" "$CLK_TCK" "$3"
}

# oha_p99 FILE: "p50 / p99 ms (N requests, M non-200)" of an oha JSON file.
oha_line() {
    python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
st = {str(k): int(v) for k, v in (d.get("statusCodeDistribution") or {}).items()}
err = sum(int(v) for k, v in (d.get("errorDistribution") or {}).items() if k != "aborted due to deadline")
p = d.get("latencyPercentiles") or {}
ms = lambda v: "n/a" if v is None else f"{v * 1000:.1f}"
n = sum(st.values())
bad = n - st.get("200", 0) + err
rps = st.get("200", 0) / float(d["summary"]["total"])
print(f"p50 {ms(p.get('p50'))} ms, p99 {ms(p.get('p99'))} ms ({n} requests, {rps:.1f}/s, {bad} not 200)")
PY
}

# --------------------------------------------------------------- scenario --
run_backend() {
    local backend="$1" data="$WORK_DIR/$1-data" store_url
    local -a env_store=(env)
    mkdir -p "$data"
    if [[ "$backend" == postgres ]]; then
        PG_ADMIN_URL="$BENCH_POSTGRES_URL"
        PG_DB="gatehouse_scale_$$"
        psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE \"$PG_DB\"" >/dev/null || die "cannot create database $PG_DB"
        store_url="${PG_ADMIN_URL%/*}/$PG_DB"
        local kek
        kek="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
        env_store=(env "GATEHOUSE_KEK=$kek" "GATEHOUSE_DATABASE_URL=$store_url")
    else
        store_url="sqlite://$data/gatehouse.db"
    fi
    local gh=("${env_store[@]}" "$GATEHOUSE_BIN")

    # The schema, by the real binary; the template user, the admin and the feed client.
    log "$backend: schema and fixtures through gatehouse admin"
    printf 'seed-password-1\n' | timeout 120 "${gh[@]}" admin --data-dir "$data" user create \
        --username seed-template --email seed-template@example.com >/dev/null \
        || die "gatehouse admin user create failed"
    printf 'scale-admin-password-1\n' | timeout 120 "${gh[@]}" admin --data-dir "$data" user create \
        --username scale-admin --email scale-admin@example.com --role admin >/dev/null \
        || die "gatehouse admin user create (admin) failed"
    timeout 120 "${gh[@]}" admin --data-dir "$data" client create --name scale-gateway \
        --scope revocations:read </dev/null >"$WORK_DIR/feed-client.json" \
        || die "gatehouse admin client create failed"
    local feed_id feed_secret
    feed_id="$(json_field "$WORK_DIR/feed-client.json" client_id)" || die "no feed client id"
    feed_secret="$(json_field "$WORK_DIR/feed-client.json" client_secret)" || die "no feed client secret"

    log "$backend: seeding $BENCH_CLIENTS clients, $BENCH_USERS users, $BENCH_AUDIT_EVENTS audit events"
    tool "$WORK_DIR/seed-$backend.json" seed --store "$store_url" --clients "$BENCH_CLIENTS" \
        --users "$BENCH_USERS" --audit-events "$BENCH_AUDIT_EVENTS" \
        --password-hash-from seed-template
    result "$backend" "seeding $BENCH_CLIENTS clients + $BENCH_USERS users + $BENCH_AUDIT_EVENTS audit events" \
        "$(jq_py "$WORK_DIR/seed-$backend.json" '"%.0f s (" % d["seconds"] + ", ".join("%s %.0f s" % (k, v["seconds"]) for k, v in d["tables"].items()) + ")"')"
    if [[ "$backend" == sqlite ]]; then
        result "$backend" "store size" "$(du -sh "$data" | cut -f1)"
    else
        result "$backend" "store size" "$(psql -tA "$store_url" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
    fi
    log "disk: $(df -h / | tail -n 1)"

    # ------------------------------------------------------- the auth node --
    local auth_port gw_port up_port metrics_port
    read -r auth_port gw_port up_port metrics_port < <(free_ports 4) || true
    [[ -n "${metrics_port:-}" ]] || die "could not pick free ports"
    AUTH="http://127.0.0.1:$auth_port"
    local launched auth_pid ms
    launched="$(now_ms)"
    start auth "$backend-auth.log" "${gh[@]}" auth --data-dir "$data" \
        --auth-listen "127.0.0.1:$auth_port" --issuer "$AUTH"
    auth_pid="$STARTED_PID"
    ms="$(ready_ms "gatehouse auth" "$AUTH/readyz" "$auth_pid" "$launched")"
    result "$backend" "auth node: start-up to /readyz 200" "$ms ms"
    result "$backend" "auth node: RSS when ready" "$(rss_now "$auth_pid")"

    # Seeded rows are usable: a seeded user signs in with the shared password.
    local code
    code="$(http POST "$AUTH/oauth2/token" "$WORK_DIR/pw.json" -d grant_type=password \
        -d client_id=gatehouse-web -d "username=seed-user-$(printf '%07d' "$BENCH_USERS")" \
        -d password=seed-password-1)"
    [[ "$code" == 200 ]] || die "a seeded user's password grant answered $code: $(head -c 300 "$WORK_DIR/pw.json")"
    log "$backend: seeded user seed-user-$(printf '%07d' "$BENCH_USERS") signs in (password grant 200)"

    # ---------------------------------------------------------------- tokens --
    local label before n
    for label in one:1 many:"$BENCH_DISTINCT_CLIENTS"; do
        n="${label#*:}"
        label="${label%%:*}"
        # A short warm-up on other clients than the measured ones (the first runs checks too).
        tool "$WORK_DIR/warm.json" tokens --auth "$AUTH" --clients 1 --first-client "$BENCH_CLIENTS" \
            --concurrency "$BENCH_CONCURRENCY" --duration-secs 2 --label warm-up
        before="$(cpu_ticks "$auth_pid")"
        tool "$WORK_DIR/tokens-$backend-$label.json" tokens --auth "$AUTH" --clients "$n" \
            --concurrency "$BENCH_CONCURRENCY" --duration-secs "$BENCH_SECONDS" --label "$label"
        local f="$WORK_DIR/tokens-$backend-$label.json"
        result "$backend" "client_credentials, $n distinct client(s), c=$BENCH_CONCURRENCY" \
            "$(jq_py "$f" '"%.0f tokens/s, p50 %s ms, p99 %s ms" % (d["per_second"], d["p50_ms"], d["p99_ms"])'), $(cpu_us_per "$auth_pid" "$before" "$(jq_py "$f" 'd["requests"]')") µs CPU/token$(jq_py "$f" '"" if d["requests"] == d["ok"] else " [not 200: %s]" % (d["requests"] - d["ok"])')"
    done
    result "$backend" "auth node: RSS after the token runs" "$(rss_now "$auth_pid") (peak $(rss_of "$auth_pid"))"

    # ----------------------------------------------------------- admin lists --
    code="$(http POST "$AUTH/oauth2/token" "$WORK_DIR/admin.json" -d grant_type=password \
        -d client_id=gatehouse-web -d username=scale-admin -d password=scale-admin-password-1)"
    [[ "$code" == 200 ]] || die "the admin's password grant answered $code"
    local admin_token now_s mid
    admin_token="$(json_field "$WORK_DIR/admin.json" access_token)"
    now_s="$(date +%s)"
    mid=$((now_s - 15 * 86400))
    local subject
    subject="seed-uid-$(printf '%07d' $(((4242 * 7919) % BENCH_USERS + 1)))"
    local -a lists=(
        "clients, first page|/admin/clients?limit=50"
        "clients, page at the middle|/admin/clients?limit=50&cursor=seed-client-$(printf '%07d' $((BENCH_CLIENTS / 2)))"
        "users, first page|/admin/users?limit=50"
        "users, page at the middle|/admin/users?limit=50&cursor=seed-uid-$(printf '%07d' $((BENCH_USERS / 2)))"
        "audit, no filter|/admin/audit?limit=50"
        "audit, subject (one user)|/admin/audit?limit=50&subject=$subject"
        "audit, type=login.failure (common)|/admin/audit?limit=50&type=login.failure"
        "audit, type=admin.user.blocked (rare)|/admin/audit?limit=50&type=admin.user.blocked"
        "audit, since/until (one hour, 15 days ago)|/admin/audit?limit=50&since=$((mid - 3600))&until=$mid"
        "audit, subject + since|/admin/audit?limit=50&subject=$subject&since=$((now_s - 7 * 86400))"
    )
    local item what path i=0
    for item in "${lists[@]}"; do
        what="${item%%|*}"
        path="${item#*|}"
        i=$((i + 1))
        code="$(http GET "$AUTH$path" "$WORK_DIR/list.json" -H "Authorization: Bearer $admin_token")"
        [[ "$code" == 200 ]] || die "GET $path answered $code: $(head -c 300 "$WORK_DIR/list.json")"
        oha_run "$WORK_DIR/admin-$i.json" "$BENCH_ADMIN_SECONDS" "$BENCH_ADMIN_CONCURRENCY" \
            -H "Authorization: Bearer $admin_token" "$AUTH$path"
        result "$backend" "GET $what (c=$BENCH_ADMIN_CONCURRENCY)" "$(oha_line "$WORK_DIR/admin-$i.json")"
    done

    # ---------------------------------------------------------------- sign-up --
    tool "$WORK_DIR/signups-$backend.json" signups --auth "$AUTH" --concurrency "$BENCH_SIGNUP_CONCURRENCY" \
        --duration-secs "$BENCH_SIGNUP_SECONDS" --prefix "scale-$backend-$$"
    result "$backend" "POST /users (c=$BENCH_SIGNUP_CONCURRENCY)" \
        "$(jq_py "$WORK_DIR/signups-$backend.json" '"%.1f/s, p50 %s ms, p99 %s ms (%d requests, %d not 201)" % (d["per_second"], d["p50_ms"], d["p99_ms"], d["requests"], d["requests"] - d["ok"])')"

    # ---------------------------------------------------------------- gateway --
    start upstream "$backend-upstream.log" "$BENCH_TOOL_BIN" upstream --listen "127.0.0.1:$up_port"
    wait_for_200 "the upstream" "http://127.0.0.1:$up_port/" "$STARTED_PID"
    printf '[gateway]\nissuer = "%s"\nfeed_client_id = "%s"\n\n[[route]]\nname = "bench"\nprefix = "/bench"\nupstream = "http://127.0.0.1:%s"\nmethods = ["GET"]\nscopes = { GET = ["rates:read"] }\n' \
        "$AUTH" "$feed_id" "$up_port" >"$WORK_DIR/gateway.toml"
    local gw="http://127.0.0.1:$gw_port" gw_pid phase
    token_for 1 "$WORK_DIR/held-token"
    for phase in before after; do
        if [[ "$phase" == after ]]; then
            local jti
            jti="$(jti_of "$WORK_DIR/held-token")"
            log "$backend: revoking $BENCH_REVOKED seeded token ids and the held token's jti $jti"
            tool "$WORK_DIR/seed-revoked-$backend.json" seed --store "$store_url" \
                --revoked-tokens "$BENCH_REVOKED" --extra-revoked-jti "$jti"
            result "$backend" "seeding $BENCH_REVOKED revoked token ids" \
                "$(jq_py "$WORK_DIR/seed-revoked-$backend.json" '"%.0f s" % d["seconds"]')"
        fi
        launched="$(now_ms)"
        start gateway "$backend-gateway-$phase.log" env GATEHOUSE_GATEWAY_CLIENT_SECRET="$feed_secret" \
            "$GATEHOUSE_BIN" gateway --config "$WORK_DIR/gateway.toml" --listen "127.0.0.1:$gw_port" \
            --metrics-listen "127.0.0.1:$metrics_port"
        gw_pid="$STARTED_PID"
        ms="$(ready_ms "the gateway" "$gw/_gatehouse/readyz" "$gw_pid" "$launched")"
        # Ready may come before the whole backlog is in: wait for every revocation (its metrics).
        local revoked_seen want=0 full_ms=""
        [[ "$phase" == before ]] || want=$((BENCH_REVOKED + 1))
        while :; do
            revoked_seen="$(curl --noproxy '*' -s --max-time 5 "http://127.0.0.1:$metrics_port/metrics" \
                | awk '/^gatehouse_feed_events_total\{.*token_revoked/ {print $NF}' | head -n 1)"
            revoked_seen="${revoked_seen:-0}"
            if [[ "${revoked_seen%.*}" -ge "$want" ]]; then full_ms=$(($(now_ms) - launched)); break; fi
            (($(now_ms) - launched < BENCH_READY_TIMEOUT * 1000)) || break
            sleep 0.1
        done
        result "$backend" "gateway ($phase the revocations): start-up to ready; to all $want revocations received" \
            "$ms ms; ${full_ms:-not within ${BENCH_READY_TIMEOUT}s} ms (token_revoked events: $revoked_seen)"
        result "$backend" "gateway ($phase the revocations): RSS when ready" "$(rss_now "$gw_pid")"
        local fresh="$WORK_DIR/fresh-token"
        token_for 2 "$fresh"
        code="$(http GET "$gw/bench/x" "$WORK_DIR/gw.out" -H "Authorization: Bearer $(cat "$fresh")")"
        [[ "$code" == 200 ]] || die "the gateway answered $code to a valid token"
        code="$(http GET "$gw/bench/x" "$WORK_DIR/gw.out" -H "Authorization: Bearer $(cat "$WORK_DIR/held-token")")"
        if [[ "$phase" == after ]]; then
            [[ "$code" == 401 ]] || die "the gateway answered $code to a token revoked in the seed (want 401)"
            result "$backend" "gateway: the token whose jti was seeded as revoked" "refused (401)"
        else
            [[ "$code" == 200 ]] || die "the gateway answered $code to the held token before the revocations"
        fi
        before="$(cpu_ticks "$gw_pid")"
        oha_run "$WORK_DIR/gw-$phase.json" "$BENCH_GATEWAY_SECONDS" "$BENCH_CONCURRENCY" \
            -H "Authorization: Bearer $(cat "$fresh")" "$gw/bench/x"
        result "$backend" "gateway ($phase the revocations): GET through it, valid token, c=$BENCH_CONCURRENCY" \
            "$(oha_line "$WORK_DIR/gw-$phase.json"), $(cpu_us_per "$gw_pid" "$before" \
                "$(jq_py "$WORK_DIR/gw-$phase.json" 'sum(int(v) for v in d["statusCodeDistribution"].values())')") µs gateway CPU/req"
        result "$backend" "gateway ($phase the revocations): RSS after the load" "$(rss_now "$gw_pid") (peak $(rss_of "$gw_pid"))"
        stop_process "$gw_pid" gateway
    done
    result "$backend" "auth node: RSS at the end" "$(rss_now "$auth_pid") (peak $(rss_of "$auth_pid"))"

    # Everything of this backend goes: processes, data.
    local p
    for p in "${PIDS[@]}"; do stop_process "$p" "pid $p"; done
    PIDS=()
    if [[ "$backend" == postgres ]]; then
        psql -q "$PG_ADMIN_URL" -c "DROP DATABASE \"$PG_DB\" WITH (FORCE)" >/dev/null || log "could not drop $PG_DB"
        PG_DB=""
    fi
    rm -rf "$data"
}

LOAD_BEFORE="$(load_average)"
for backend in "${BACKENDS[@]}"; do
    run_backend "$backend"
done
LOAD_AFTER="$(load_average)"

# ------------------------------------------------------------------ report --
REPORT="$WORK_DIR/report.md"
{
    echo "## At scale (\`bench/scale.sh\`)"
    echo
    machine_lines
    echo "- sizes: $BENCH_CLIENTS clients, $BENCH_USERS users, $BENCH_AUDIT_EVENTS audit events, then $BENCH_REVOKED revoked token ids; tokens over $BENCH_DISTINCT_CLIENTS distinct clients"
    echo "- load tools on the same machine: revocation-bench (tokens, sign-ups), $OHA_VER (admin lists, gateway)"
    echo "- load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER; the last column is the 1-minute load average when each figure was taken"
    echo
    python3 - "$RESULTS" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
for backend in dict.fromkeys(r[0] for r in rows):
    print(f"### {backend}")
    print()
    print("| measurement | result | load (1 min) |")
    print("|---|---|---:|")
    for b, what, value, load in rows:
        if b == backend:
            print(f"| {what} | {value} | {load} |")
    print()
PY
} >"$REPORT"
publish_report "$REPORT"
