#!/usr/bin/env bash
# Load benchmark of Gatehouse's API gateway against nginx.
#
# One tiny upstream (an nginx instance answering `200 ok`) is called four
# ways: directly, through a second nginx instance as a plain reverse proxy (no auth), through
# the gateway of `gatehouse serve` with a valid token (verdict cache on), and
# through a standalone `gatehouse gateway` with the verdict cache off
# (token_cache_capacity = 0, so every request verifies the token's signature).
# Each target is driven with `oha` at several concurrency levels and a
# Markdown report (machine + results table + gateway overhead) is printed.
# The headline columns are CPU microseconds per request of the proxy under
# test and of the upstream, each a separate process group, from their own
# CPU accounting (utime + stime in /proc/PID/stat) over each measured run.
#
# All traffic goes to 127.0.0.1 only; every step is bounded in time.
# See bench/README.md for the environment knobs.
set -euo pipefail

# ---------------------------------------------------------------- settings --
BENCH_SECONDS="${BENCH_SECONDS:-10}"                   # per target and level
BENCH_WARMUP_SECONDS="${BENCH_WARMUP_SECONDS:-2}"      # per target, before measuring
BENCH_CONCURRENCY="${BENCH_CONCURRENCY:-16 64}"
BENCH_TARGETS="${BENCH_TARGETS:-direct nginx cached uncached}"
BENCH_NGINX_WORKERS="${BENCH_NGINX_WORKERS:-auto}"     # nginx worker_processes
BENCH_OUT="${BENCH_OUT:-}"
BENCH_RAW_DIR="${BENCH_RAW_DIR:-}"
BENCH_OHA_THREADS="${BENCH_OHA_THREADS:-}"
BENCH_REQUEST_TIMEOUT="${BENCH_REQUEST_TIMEOUT:-30}"   # seconds, per request
BENCH_READY_TIMEOUT="${BENCH_READY_TIMEOUT:-30}"       # seconds, each server's start
BENCH_INSTALL_TIMEOUT="${BENCH_INSTALL_TIMEOUT:-600}"  # seconds, apt-get for nginx
OHA_VERSION="${OHA_VERSION:-1.16.0}"                   # installed if oha is missing
GATEHOUSE_BIN="${GATEHOUSE_BIN:-}"                     # set => skip the cargo build
# No access log line per request (the gateway logs each request at info, target
# gatehouse::access): the benchmark measures the proxy, not the terminal.
export GATEHOUSE_LOG="${GATEHOUSE_LOG:-warn}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

require_uint BENCH_SECONDS BENCH_WARMUP_SECONDS BENCH_REQUEST_TIMEOUT \
             BENCH_READY_TIMEOUT BENCH_INSTALL_TIMEOUT
[[ "$BENCH_SECONDS" -gt 0 ]] || die "BENCH_SECONDS must be > 0"
parse_concurrency
read -r -a TARGETS <<<"$BENCH_TARGETS"
[[ ${#TARGETS[@]} -gt 0 ]] || die "BENCH_TARGETS is empty"
for t in "${TARGETS[@]}"; do
    case "$t" in direct|nginx|cached|uncached) ;; *) die "unknown target '$t' in BENCH_TARGETS" ;; esac
done
[[ "$BENCH_NGINX_WORKERS" == auto ]] || { is_uint "$BENCH_NGINX_WORKERS" && [[ "$BENCH_NGINX_WORKERS" -gt 0 ]]; } \
    || die "BENCH_NGINX_WORKERS must be 'auto' or a positive number"
optional_uint BENCH_OHA_THREADS
require_tools
cpu_setup

# ------------------------------------------------------------ cleanup trap --
WORK_DIR=""
UPSTREAM_PID=""   # the upstream's nginx instance (master; its workers are its children)
NGINX_PID=""      # the proxy's nginx instance
SERVER_PID=""
NOCACHE_PID=""
OHA_PID=""
POLICY_RC_D=""   # set while a temporary /usr/sbin/policy-rc.d of ours exists

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$POLICY_RC_D" ]]; then
        rm -f "$POLICY_RC_D" || true
    fi
    stop_oha "$OHA_PID"
    perf_end
    stop_process "$NOCACHE_PID" "the uncached gateway"
    stop_process "$SERVER_PID" "the server"
    stop_process "$NGINX_PID" "nginx (proxy)"
    stop_process "$UPSTREAM_PID" "nginx (upstream)"
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        local f
        for f in server.log gateway-nocache.log nginx/error.log upstream/error.log; do
            keep_log "$rc" "$f" 30 "$f"
        done
        rm -rf "$WORK_DIR"
    fi
    exit "$rc"
}
set_traps
make_work_dir gatehouse-bench-gw

# ------------------------------------------------------------------- nginx --
export PATH="$PATH:/usr/sbin:/sbin"
if ! command -v nginx >/dev/null; then
    log "nginx not found: installing it with apt-get"
    [[ "$(id -u)" -eq 0 ]] || die "nginx is missing and installing it needs root (apt-get install nginx)"
    command -v apt-get >/dev/null || die "nginx is missing and apt-get is not available"
    # Keep the package's post-install from starting a system nginx on port 80: when no
    # policy-rc.d exists, put one that forbids service starts in place for the install.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        POLICY_RC_D=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# temporary, from gatehouse bench/gateway.sh\nexit 101\n' >"$POLICY_RC_D"
        chmod 0755 "$POLICY_RC_D"
    fi
    export DEBIAN_FRONTEND=noninteractive
    timeout "$BENCH_INSTALL_TIMEOUT" apt-get update -qq >&2 || die "apt-get update failed"
    timeout "$BENCH_INSTALL_TIMEOUT" apt-get install -y -qq --no-install-recommends nginx >/dev/null \
        || die "apt-get install nginx failed"
    if [[ -n "$POLICY_RC_D" ]]; then
        rm -f "$POLICY_RC_D"
        POLICY_RC_D=""
    fi
    command -v nginx >/dev/null || die "nginx still not on PATH after install"
fi
NGINX_VER="$(nginx -v 2>&1 | sed -n 's/^nginx version: //p' | head -n1)"
[[ -n "$NGINX_VER" ]] || die "'nginx -v' failed"
log "using $NGINX_VER"

# ------------------------------------------------------------- oha + build --
setup_oha -z -c -t -H --no-tui
build_gatehouse

# ------------------------------------------------------------------- ports --
# Five distinct free loopback ports, bound together so that none repeats.
UPSTREAM_PORT="" NGINX_PORT="" AUTH_PORT="" GATEWAY_PORT="" NOCACHE_PORT=""
read -r UPSTREAM_PORT NGINX_PORT AUTH_PORT GATEWAY_PORT NOCACHE_PORT < <(free_ports 5) || true
[[ -n "${NOCACHE_PORT:-}" ]] || die "could not pick free ports"
AUTH="http://127.0.0.1:$AUTH_PORT"
BENCH_PATH="/bench/x"
declare -A URL=(
    [direct]="http://127.0.0.1:$UPSTREAM_PORT$BENCH_PATH"
    [nginx]="http://127.0.0.1:$NGINX_PORT$BENCH_PATH"
    [cached]="http://127.0.0.1:$GATEWAY_PORT$BENCH_PATH"
    [uncached]="http://127.0.0.1:$NOCACHE_PORT$BENCH_PATH"
)
declare -A LABEL=(
    [direct]="direct (upstream)"
    [nginx]="nginx proxy"
    [cached]="gateway, cached"
    [uncached]="gateway, uncached"
)

# ------------------------------------------------------------ start nginx --
# Two nginx instances, each with its prefix and every path inside WORK_DIR: the static upstream,
# and in front of it a plain reverse proxy with keep-alive to the upstream. Separate instances,
# so that each one's CPU time is measured on its own (the proxy's, beside the gateway's).
# nginx_conf DIR SERVER_BLOCKS: writes DIR/nginx.conf around the given http-level blocks.
nginx_conf() {
    local dir="$1" blocks="$2"
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes $BENCH_NGINX_WORKERS;
worker_rlimit_nofile 16384;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    # No reconnects forced by nginx during a run (the default closes a
    # keep-alive connection after 1000 requests).
    keepalive_requests 100000000;
    keepalive_timeout 75s;
$blocks
}
EOF
}

# nginx_start DIR NAME: checks DIR/nginx.conf and starts that instance (daemon off) as a
# background job; its pid goes to NGINX_STARTED_PID.
nginx_start() {
    local dir="$1" name="$2"
    local -a cmd=(nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log")
    timeout 30 "${cmd[@]}" -t -q >&2 || die "nginx ($name) rejected its configuration ($dir/nginx.conf)"
    "${cmd[@]}" -g 'daemon off;' </dev/null >>"$dir/error.log" 2>&1 &
    NGINX_STARTED_PID=$!
}

UPS="$WORK_DIR/upstream"
nginx_conf "$UPS" "
    # The upstream: any path, 200 \"ok\\n\".
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        location / {
            default_type text/plain;
            return 200 \"ok\\n\";
        }
    }"
NGX="$WORK_DIR/nginx"
nginx_conf "$NGX" "
    upstream bench_upstream {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 100000000;
    }

    # nginx as a plain reverse proxy: no auth.
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
log "starting nginx: upstream on 127.0.0.1:$UPSTREAM_PORT"
nginx_start "$UPS" upstream
UPSTREAM_PID="$NGINX_STARTED_PID"
wait_for_200 "nginx (upstream)" "${URL[direct]}" "$UPSTREAM_PID"
log "starting nginx: proxy on 127.0.0.1:$NGINX_PORT"
nginx_start "$NGX" proxy
NGINX_PID="$NGINX_STARTED_PID"
wait_for_200 "nginx (proxy)" "${URL[nginx]}" "$NGINX_PID"
NGINX_WORKERS="$(pgrep -c -P "$NGINX_PID" 2>/dev/null || echo '?')"
UPSTREAM_WORKERS="$(pgrep -c -P "$UPSTREAM_PID" 2>/dev/null || echo '?')"
log "nginx ready (upstream pid $UPSTREAM_PID, $UPSTREAM_WORKERS workers; proxy pid $NGINX_PID, $NGINX_WORKERS workers)"

# ------------------------------------------------------ start gatehouse --
UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT"
ROUTE="[[route]]
name = \"bench\"
prefix = \"/bench\"
upstream = \"$UPSTREAM\"
methods = [\"GET\"]
scopes = { GET = [\"rates:read\"] }"
printf '%s\n' "$ROUTE" >"$WORK_DIR/routes.toml"
printf '[gateway]\nissuer = "%s"\ntoken_cache_capacity = 0\n\n%s\n' "$AUTH" "$ROUTE" \
    >"$WORK_DIR/gateway-nocache.toml"

DATA_DIR="$WORK_DIR/data"
mkdir -p "$DATA_DIR"
log "starting $GATEHOUSE_BIN serve: auth $AUTH, gateway 127.0.0.1:$GATEWAY_PORT (data dir $DATA_DIR)"
"$GATEHOUSE_BIN" serve --data-dir "$DATA_DIR" \
    --auth-listen "127.0.0.1:$AUTH_PORT" --issuer "$AUTH" \
    --gateway-listen "127.0.0.1:$GATEWAY_PORT" --gateway-routes "$WORK_DIR/routes.toml" --apps-ports-from 0 \
    </dev/null >"$WORK_DIR/server.log" 2>&1 &
SERVER_PID=$!
wait_for_200 "the server" "$AUTH/readyz" "$SERVER_PID"
wait_for_200 "the server's gateway" "http://127.0.0.1:$GATEWAY_PORT/_gatehouse/healthz" "$SERVER_PID"
log "server ready (pid $SERVER_PID)"

if [[ " ${TARGETS[*]} " == *" uncached "* ]]; then
    # Standalone, without a feed client: it warns that it does not follow revocations, which
    # does not matter here. Its verdict cache is off, so every request checks the signature.
    log "starting $GATEHOUSE_BIN gateway (verdict cache off) on 127.0.0.1:$NOCACHE_PORT"
    "$GATEHOUSE_BIN" gateway --config "$WORK_DIR/gateway-nocache.toml" \
        --listen "127.0.0.1:$NOCACHE_PORT" \
        </dev/null >"$WORK_DIR/gateway-nocache.log" 2>&1 &
    NOCACHE_PID=$!
    wait_for_200 "the uncached gateway" "http://127.0.0.1:$NOCACHE_PORT/_gatehouse/healthz" "$NOCACHE_PID"
    log "uncached gateway ready (pid $NOCACHE_PID)"
fi

# ------------------------------------------------------------------ token --
register_client "$AUTH"

TOKEN=""
TOKEN_EXPIRES_AT=0
# ensure_token SECONDS: a token that stays valid for at least that long.
ensure_token() {
    local need="$1" code ttl
    [[ -z "$TOKEN" || $((SECONDS + need)) -ge $TOKEN_EXPIRES_AT ]] || return 0
    code="$(http POST "$AUTH/oauth2/token" "$WORK_DIR/token.json" \
        -u "$CLIENT_ID:$CLIENT_SECRET" \
        -H 'Content-Type: application/x-www-form-urlencoded' \
        --data 'grant_type=client_credentials&scope=rates%3Aread')"
    [[ "$code" == 200 ]] || die "client_credentials grant returned $code: $(head -c 500 "$WORK_DIR/token.json")"
    TOKEN="$(json_field "$WORK_DIR/token.json" access_token)" || die "no access_token in the token response"
    ttl="$(json_field "$WORK_DIR/token.json" expires_in)" || die "no expires_in in the token response"
    TOKEN_EXPIRES_AT=$((SECONDS + ttl))
    [[ $need -lt $ttl ]] || die "a run needs ${need}s but tokens live ${ttl}s: shorten BENCH_SECONDS"
}
# Longest single oha run, with its hard bound.
RUN_BOUND=$((BENCH_SECONDS > BENCH_WARMUP_SECONDS ? BENCH_SECONDS : BENCH_WARMUP_SECONDS))
RUN_BOUND=$((RUN_BOUND + BENCH_REQUEST_TIMEOUT + 30))
ensure_token "$RUN_BOUND"
# The JWT header's alg: the server signs with GATEHOUSE_AUTH__SIGNING_ALGORITHM when it is set.
TOKEN_ALG="$(python3 -c 'import base64, json, sys; h = sys.argv[1].split(".")[0]; print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["alg"])' "$TOKEN")" \
    || die "the access token's header is not readable"
if [[ -n "${GATEHOUSE_AUTH__SIGNING_ALGORITHM:-}" && "$TOKEN_ALG" != "$GATEHOUSE_AUTH__SIGNING_ALGORITHM" ]]; then
    die "the access token is signed with $TOKEN_ALG, not $GATEHOUSE_AUTH__SIGNING_ALGORITHM"
fi
log "got an access token signed with $TOKEN_ALG (expires in $((TOKEN_EXPIRES_AT - SECONDS))s)"

# ------------------------------------------------------------------ checks --
# Every target answers 200 to the benchmark's request; the gateways refuse it without a token
# and with a token whose signature was altered.
sig="${TOKEN##*.}"
[[ "${sig:10:1}" == A ]] && flip=B || flip=A
FORGED="${TOKEN%.*}.${sig:0:10}$flip${sig:11}"
for t in "${TARGETS[@]}"; do
    code="$(http GET "${URL[$t]}" "$WORK_DIR/check.txt" -H "Authorization: Bearer $TOKEN")"
    [[ "$code" == 200 ]] || die "${LABEL[$t]}: GET ${URL[$t]} returned $code: $(head -c 500 "$WORK_DIR/check.txt")"
    if [[ "$t" == cached || "$t" == uncached ]]; then
        code="$(http GET "${URL[$t]}" "$WORK_DIR/check.txt")"
        [[ "$code" == 401 ]] || die "${LABEL[$t]}: GET without a token returned $code, not 401"
        code="$(http GET "${URL[$t]}" "$WORK_DIR/check.txt" -H "Authorization: Bearer $FORGED")"
        [[ "$code" == 401 ]] || die "${LABEL[$t]}: GET with a forged token returned $code, not 401"
    fi
    log "${LABEL[$t]} answers 200 on ${URL[$t]}"
done

# --------------------------------------------------------------------- run --
all_alive() {
    kill -0 "$UPSTREAM_PID" 2>/dev/null || die "nginx (upstream) exited $1"
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx (proxy) exited $1"
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited $1"
    [[ -z "$NOCACHE_PID" ]] || kill -0 "$NOCACHE_PID" 2>/dev/null || die "the uncached gateway exited $1"
}

# run_oha OUTFILE SECONDS CONCURRENCY URL
# Every target gets the same request, Authorization header included.
run_oha() {
    ensure_token "$(($2 + BENCH_REQUEST_TIMEOUT + 30))"
    oha_run "$1" "$2" "$3" -H "Authorization: Bearer $TOKEN" "$4"
}

# The process group each target's proxy runs in (direct: none, the upstream answers itself).
declare -A PROXY_PID=(
    [direct]=""
    [nginx]="$NGINX_PID"
    [cached]="$SERVER_PID"
    [uncached]="$NOCACHE_PID"
)

# Targets one after the other (the others idle), each level after a warm-up at
# the highest level, which also fills the keep-alive pools to the upstream.
RESULTS="$WORK_DIR/results.tsv"
: >"$RESULTS"
LOAD_BEFORE="$(load_average)"
for t in "${TARGETS[@]}"; do
    if [[ "$BENCH_WARMUP_SECONDS" -gt 0 ]]; then
        log "${LABEL[$t]}: warm-up ${BENCH_WARMUP_SECONDS}s at c=$MAX_CONCURRENCY"
        run_oha "$WORK_DIR/warmup.json" "$BENCH_WARMUP_SECONDS" "$MAX_CONCURRENCY" "${URL[$t]}"
        all_alive "during the ${LABEL[$t]} warm-up"
    fi
    for c in "${CONCURRENCY_LEVELS[@]}"; do
        log "${LABEL[$t]}: ${BENCH_SECONDS}s at c=$c"
        out="$WORK_DIR/oha-$t-c$c.json"
        # ensure_token first, so that a token refresh does not fall into the CPU window.
        ensure_token "$((BENCH_SECONDS + BENCH_REQUEST_TIMEOUT + 30))"
        # CPU windows: the proxy under test (nginx: master and workers) and the upstream instance.
        [[ -z "${PROXY_PID[$t]}" ]] || cpu_begin proxy "${PROXY_PID[$t]}"
        cpu_begin upstream "$UPSTREAM_PID"
        [[ -z "${PROXY_PID[$t]}" ]] || perf_begin "gateway-$t-c$c" "${PROXY_PID[$t]}"
        run_oha "$out" "$BENCH_SECONDS" "$c" "${URL[$t]}"
        cpu_end "$out"
        perf_end
        all_alive "during the ${LABEL[$t]} run at c=$c"
        [[ -z "$BENCH_RAW_DIR" ]] || cp "$out" "$out.cpu" "$BENCH_RAW_DIR/"
        printf '%s\t%s\t%s\t%s\n' "$t" "${LABEL[$t]}" "$c" "$out" >>"$RESULTS"
    done
done

LOAD_AFTER="$(load_average)"
SERVER_RSS="$(rss_of "$SERVER_PID")"
NOCACHE_RSS=""
[[ -z "$NOCACHE_PID" ]] || NOCACHE_RSS="$(rss_of "$NOCACHE_PID")"

# ------------------------------------------------------------------ report --
SUMMARY="$WORK_DIR/summary.jsonl"
oha_summaries "$RESULTS" >"$SUMMARY"
REPORT="$WORK_DIR/report.md"
BAD_FILE="$WORK_DIR/non200.count"
{
    echo "## Gateway benchmark"
    echo
    machine_lines
    echo "- load generator: $OHA_VER on the same machine: oha, nginx and Gatehouse all share the $(nproc) CPUs"
    echo "- upstream: $NGINX_VER, its own instance (worker_processes $BENCH_NGINX_WORKERS = $UPSTREAM_WORKERS workers), a server block answering \`200 ok\` to \`GET $BENCH_PATH\`"
    echo "- nginx proxy: a second nginx instance (worker_processes $BENCH_NGINX_WORKERS = $NGINX_WORKERS workers, as many as Gatehouse's runtime has threads when \`auto\`), no auth, HTTP/1.1 keep-alive to the upstream (\`keepalive 64\`), access log off"
    echo "- gateway, cached: \`gatehouse serve\`'s gateway, verdict cache on (default), revocation feed followed; peak RSS ${SERVER_RSS:-n/a} (whole server)"
    if [[ -n "$NOCACHE_PID" ]]; then
        echo "- gateway, uncached: standalone \`gatehouse gateway\` with \`token_cache_capacity = 0\` (every request verifies the token's signature); no feed client, so it does not follow revocations (irrelevant here); peak RSS ${NOCACHE_RSS:-n/a}"
    fi
    echo "- every request carries the same \`Authorization: Bearer\` token (ignored by nginx), signed with $TOKEN_ALG (GATEHOUSE_AUTH__SIGNING_ALGORITHM=${GATEHOUSE_AUTH__SIGNING_ALGORITHM:-unset, the default}); log filter GATEHOUSE_LOG=$GATEHOUSE_LOG"
    echo "- load average (1, 5, 15 min) before the first run: $LOAD_BEFORE; after the last: $LOAD_AFTER"
    echo "- CPU µs/req: utime + stime (\`/proc/PID/stat\`, CLK_TCK $CLK_TCK) over each measured run, divided by its responses. proxy: the nginx proxy instance (master + workers), the whole \`gatehouse serve\` process (auth server idle, gateway, feed) for the cached gateway, the \`gatehouse gateway\` process for the uncached one; upstream: the upstream nginx instance (master + workers); oha is not counted"
    echo "- durations: ${BENCH_SECONDS}s per target and level, after a ${BENCH_WARMUP_SECONDS}s warm-up per target at c=$MAX_CONCURRENCY; targets run one at a time, the others idle"
    echo
    python3 - "$SUMMARY" "$BAD_FILE" <<'PY'
import json, sys

def ms(v):
    return "n/a" if v is None else f"{v * 1000:.3f}"

res = {}
total_bad = 0
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)
        key, r["label"], conc = r["cols"]
        total_bad += r["bad"]
        res[(key, int(conc))] = r

levels = sorted({c for _, c in res})
order = ["direct", "nginx", "cached", "uncached"]

def cpu(r, group):
    v = r["cpu"].get(group)
    return "—" if group not in r["cpu"] else ("n/a" if v is None else f"{v:.1f}")

def cpu_total(r):
    vals = list(r["cpu"].values())
    return "n/a" if not vals or None in vals else f"{sum(vals):.1f}"

print("| target | concurrency | proxy CPU µs/req | upstream CPU µs/req | total CPU µs/req | requests | requests/s (200) | p50 ms | p99 ms | non-200 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in levels:
    for key in order:
        r = res.get((key, c))
        if r:
            print(f"| {r['label']} | {c} | {cpu(r, 'proxy')} | {cpu(r, 'upstream')} | {cpu_total(r)} | "
                  f"{r['attempts']} | {r['rps']:.0f} | {ms(r['p50'])} | "
                  f"{ms(r['p99'])} | {r['bad']}{r['detail']} |")
print()
print("CPU µs/req is each process group's CPU time per response over the measured run (the "
      "headline: it varies far less than requests/s when other work shares the machine); proxy is "
      "the process under test, upstream the upstream nginx instance, total both. requests/s counts "
      "200 responses only; p50/p99 are over all responses; non-200 counts other statuses and "
      "transport errors (must be 0).")

def added(key, c):
    r, d = res.get((key, c)), res.get(("direct", c))
    if not r or not d or r["p50"] is None or d["p50"] is None:
        return None
    return (r["p50"] - d["p50"]) * 1000

def cpu_share(key, c):
    r, n = res.get((key, c)), res.get(("nginx", c))
    if not r or not n:
        return None
    a, b = r["cpu"].get("proxy"), n["cpu"].get("proxy")
    return None if a is None or not b else 100.0 * a / b

def share(key, c):
    r, n = res.get((key, c)), res.get(("nginx", c))
    if not r or not n or n["rps"] <= 0:
        return None
    return 100.0 * r["rps"] / n["rps"]

cols = [k for k in ("nginx", "cached", "uncached") if any((k, c) in res for c in levels)]
if "direct" in {k for k, _ in res} and cols:
    print()
    print("Overhead over the direct call (aim for the gateway: p50 + < 0.3 ms, "
          "at least nginx's requests/s, and at most nginx's proxy CPU per request):")
    print()
    head = ["concurrency"]
    head += [f"{res[(k, levels[0])]['label'] if (k, levels[0]) in res else k}: p50 added ms" for k in cols]
    share_cols = [k for k in cols if k != "nginx" and any(("nginx", c) in res for c in levels)]
    head += [f"{res[(k, levels[0])]['label'] if (k, levels[0]) in res else k}: req/s % of nginx" for k in share_cols]
    head += [f"{res[(k, levels[0])]['label'] if (k, levels[0]) in res else k}: CPU/req % of nginx" for k in share_cols]
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * len(head))
    for c in levels:
        cells = [str(c)]
        for k in cols:
            a = added(k, c)
            mark = ""
            if a is not None and k != "nginx":
                mark = " ✓" if a < 0.3 else " ✗"
            cells.append("n/a" if a is None else f"{a:+.3f}{mark}")
        for k in share_cols:
            s = share(k, c)
            mark = "" if s is None else (" ✓" if s >= 100.0 else " ✗")
            cells.append("n/a" if s is None else f"{s:.0f}%{mark}")
        for k in share_cols:
            s = cpu_share(k, c)
            mark = "" if s is None else (" ✓" if s <= 100.0 else " ✗")
            cells.append("n/a" if s is None else f"{s:.0f}%{mark}")
        print("| " + " | ".join(cells) + " |")

with open(sys.argv[2], "w") as f:
    f.write(str(total_bad))
PY
} >"$REPORT"

publish_report "$REPORT"
bad="$(cat "$BAD_FILE" 2>/dev/null || echo 0)"
if [[ "$bad" != 0 ]]; then
    log "warning: $bad requests did not return 200; the numbers above are not clean"
fi
