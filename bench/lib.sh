# Shared helpers of the benchmark scripts (tokens.sh, gateway.sh, revocations.sh).
#
# Sourced, never run: `source "$SCRIPT_DIR/lib.sh"`. It defines
# functions; each script sets its own knobs, state variables (WORK_DIR,
# OHA_PID, ...) and traps. The functions rely on these variables of the
# calling script: REPO_ROOT, WORK_DIR, BENCH_RAW_DIR, BENCH_READY_TIMEOUT,
# BENCH_REQUEST_TIMEOUT, BENCH_OHA_THREADS, OHA_VERSION, GATEHOUSE_BIN,
# BENCH_OUT and OHA_PID.
# shellcheck shell=bash

# The nodes a benchmark starts read no figures from a metrics listener, and several of them
# run on one host: none of them binds the default metrics port.
export GATEHOUSE_METRICS_LISTEN="${GATEHOUSE_METRICS_LISTEN:-off}"

# ------------------------------------------------------------------ output --
log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------- validation --
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# require_uint VAR...: each named variable holds a non-negative integer.
require_uint() {
    local v
    for v in "$@"; do
        is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
    done
}

# optional_uint VAR...: each named variable is empty or a number.
optional_uint() {
    local v
    for v in "$@"; do
        [[ -z "${!v}" ]] || is_uint "${!v}" || die "$v must be a number"
    done
}

# parse_concurrency: BENCH_CONCURRENCY -> CONCURRENCY_LEVELS (positive
# integers, in the given order) and MAX_CONCURRENCY (the highest of them).
parse_concurrency() {
    local c
    read -r -a CONCURRENCY_LEVELS <<<"$BENCH_CONCURRENCY"
    [[ ${#CONCURRENCY_LEVELS[@]} -gt 0 ]] || die "BENCH_CONCURRENCY is empty"
    MAX_CONCURRENCY=0
    for c in "${CONCURRENCY_LEVELS[@]}"; do
        if ! is_uint "$c" || [[ "$c" -eq 0 ]]; then die "bad concurrency level '$c'"; fi
        [[ "$c" -le "$MAX_CONCURRENCY" ]] || MAX_CONCURRENCY="$c"
    done
}

# require_tools: the commands every benchmark needs besides oha.
require_tools() {
    command -v python3 >/dev/null || die "python3 is required"
    command -v curl >/dev/null || die "curl is required"
    command -v timeout >/dev/null || die "timeout (coreutils) is required"
}

# ------------------------------------------------------ work dir + cleanup --
# make_work_dir NAME: a fresh WORK_DIR under TMPDIR; creates BENCH_RAW_DIR (if
# set) and makes it absolute. Call it after the traps are in place.
make_work_dir() {
    WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    if [[ -n "$BENCH_RAW_DIR" ]]; then
        mkdir -p "$BENCH_RAW_DIR"
        BENCH_RAW_DIR="$(cd "$BENCH_RAW_DIR" && pwd)"
    fi
}

# set_traps: the script's `cleanup` runs on every exit; Ctrl-C and SIGTERM exit
# with the usual status, which runs it too.
set_traps() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# stop_oha PID: stops a `timeout … oha` job started in the background.
stop_oha() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true   # timeout passes it on to oha
    wait "$pid" 2>/dev/null || true
}

# stop_process PID NAME: SIGTERM, up to 5 s for a graceful stop, then SIGKILL.
stop_process() {
    local pid="$1" name="$2"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop on SIGTERM; sending SIGKILL"
        # nginx's workers would outlive a killed master: kill its children first.
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# keep_log RC FILE LINES LABEL: for cleanup. FILE is relative to WORK_DIR. On
# failure (RC != 0) prints its last LINES lines; copies it into BENCH_RAW_DIR
# when that is set.
keep_log() {
    local rc="$1" f="$2" lines="$3" label="$4"
    if [[ $rc -ne 0 && -s "$WORK_DIR/$f" ]]; then
        log "last lines of $label:"
        tail -n "$lines" "$WORK_DIR/$f" >&2 || true
    fi
    if [[ -n "$BENCH_RAW_DIR" && -f "$WORK_DIR/$f" ]]; then
        cp "$WORK_DIR/$f" "$BENCH_RAW_DIR/$(basename "$f")" 2>/dev/null || true
    fi
}

# --------------------------------------------------------------------- oha --
has_flag() { grep -Eq -- "(^|[ ,])$1([ ,=<]|$)" <<<"$OHA_HELP"; }

# setup_oha FLAG...: installs oha with cargo if it is missing, checks that it
# has the given flags, and sets OHA_HELP, OHA_VER, OHA_JSON (JSON output) and
# OHA_EXTRA (flags for every run).
setup_oha() {
    local f
    export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
    if ! command -v oha >/dev/null; then
        log "oha not found; installing oha $OHA_VERSION with cargo (takes a few minutes)"
        (cd "${TMPDIR:-/tmp}" && cargo install oha --locked --version "$OHA_VERSION") >&2 \
            || die "cargo install oha failed"
        command -v oha >/dev/null || die "oha still not on PATH after install"
    fi
    OHA_HELP="$(oha --help 2>&1)" || die "'oha --help' failed"
    OHA_VER="$(oha --version 2>/dev/null | head -n1)"
    for f in "$@"; do
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
    # "aborted due to deadline"; the reports ignore those either way).
    OHA_EXTRA=()
    if has_flag --wait-ongoing-requests-after-deadline; then
        OHA_EXTRA+=(--wait-ongoing-requests-after-deadline)
    fi
    if [[ -n "$BENCH_OHA_THREADS" ]]; then
        has_flag --worker-threads || die "installed $OHA_VER has no --worker-threads"
        OHA_EXTRA+=(--worker-threads "$BENCH_OHA_THREADS")
    fi
    log "using $OHA_VER"
}

# oha_start OUTFILE SECONDS CONCURRENCY ARGS...: starts oha in the background
# for SECONDS at CONCURRENCY with the request ARGS (flags and URL), JSON to
# OUTFILE and stderr to OUTFILE.err; its pid goes to OHA_STARTED_PID.
oha_start() {
    local out="$1" secs="$2" conc="$3"
    shift 3
    # Hard bound on top of -z: duration + per-request timeout + slack.
    timeout --kill-after=5 "$((secs + BENCH_REQUEST_TIMEOUT + 30))" \
        oha --no-tui "${OHA_JSON[@]}" "${OHA_EXTRA[@]}" \
            -z "${secs}s" -c "$conc" -t "${BENCH_REQUEST_TIMEOUT}s" \
            "$@" >"$out" 2>"$out.err" </dev/null &
    OHA_STARTED_PID=$!
}

# oha_run OUTFILE SECONDS CONCURRENCY ARGS...: oha_start, then waits for it.
# oha runs in the background and the shell `wait`s for it, so that Ctrl-C or
# SIGTERM reaches the traps at once (cleanup then stops oha and the servers).
oha_run() {
    local out="$1" rc=0
    oha_start "$@"
    OHA_PID="$OHA_STARTED_PID"
    wait "$OHA_PID" || rc=$?
    OHA_PID=""
    if [[ $rc -ne 0 ]]; then
        cat "$out.err" >&2
        die "oha exited with status $rc (see above)"
    fi
}

# ------------------------------------------------------------------- build --
# build_gatehouse: unless GATEHOUSE_BIN is set, `cargo build --release` and
# point GATEHOUSE_BIN at the result (in CARGO_TARGET_DIR if set).
build_gatehouse() {
    local target_dir
    if [[ -z "$GATEHOUSE_BIN" ]]; then
        log "cargo build --release -p gatehouse"
        (cd "$REPO_ROOT" && cargo build --release -p gatehouse) >&2 || die "cargo build failed"
        target_dir="${CARGO_TARGET_DIR:-target}"
        [[ "$target_dir" = /* ]] || target_dir="$REPO_ROOT/$target_dir"
        GATEHOUSE_BIN="$target_dir/release/gatehouse"
    fi
    [[ -x "$GATEHOUSE_BIN" ]] || die "server binary not found or not executable: $GATEHOUSE_BIN"
}

# ---------------------------------------------------------- ports + waiting --
# free_ports N: prints N distinct free loopback ports, separated by spaces
# (bound together so that none repeats).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# wait_for_200 NAME URL PID: polls URL until it answers 200, at most BENCH_READY_TIMEOUT s.
wait_for_200() {
    local name="$1" url="$2" pid="$3" code i
    local deadline=$((SECONDS + BENCH_READY_TIMEOUT + 1))
    for ((i = 0; i < BENCH_READY_TIMEOUT * 5 && SECONDS < deadline; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        code="$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)"
        [[ "$code" != 200 ]] || return 0
        sleep 0.2
    done
    die "$name not ready (GET $url != 200) within ${BENCH_READY_TIMEOUT}s"
}

# --------------------------------------------------------------------- http --
# http METHOD URL OUTFILE [curl args...] -> prints the HTTP status code
http() {
    local method="$1" url="$2" out="$3"
    shift 3
    curl --noproxy '*' -sS --max-time 30 -X "$method" -o "$out" -w '%{http_code}' "$@" "$url"
}

# json_field FILE KEY -> prints the value of a top-level string or integer key
json_field() {
    python3 - "$1" "$2" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    v = json.load(f).get(sys.argv[2])
if isinstance(v, bool) or not isinstance(v, (str, int)) or v == "":
    sys.exit(1)
print(v)
PY
}

# register_client AUTH_URL [AUTH_METHOD]: registers the machine client "bench"
# (client_credentials, scope rates:read) through POST /oauth2/register and
# sets CLIENT_ID and CLIENT_SECRET. AUTH_METHOD is its
# token_endpoint_auth_method (the server's default, client_secret_basic,
# when not given).
register_client() {
    local code method=""
    [[ -z "${2:-}" ]] || method=",\"token_endpoint_auth_method\":\"$2\""
    code="$(http POST "$1/oauth2/register" "$WORK_DIR/client.json" \
        -H 'Content-Type: application/json' \
        --data "{\"client_name\":\"bench\",\"grant_types\":[\"client_credentials\"],\"scope\":\"rates:read\"$method}")"
    [[ "$code" == 201 ]] || die "POST /oauth2/register returned $code: $(head -c 500 "$WORK_DIR/client.json")"
    CLIENT_ID="$(json_field "$WORK_DIR/client.json" client_id)" || die "no client_id in registration response"
    # shellcheck disable=SC2034  # CLIENT_SECRET is for the calling script
    CLIENT_SECRET="$(json_field "$WORK_DIR/client.json" client_secret)" || die "no client_secret in registration response"
    log "registered client $CLIENT_ID"
}

# ---------------------------------------------------------- CPU accounting --
# The headline figure: server CPU per request, from the kernel's own accounting of the server
# processes (utime + stime in /proc/PID/stat, fields 14 and 15, in clock ticks; they cover all
# threads of a process) read right before and right after each measured run.

# cpu_setup: checks that /proc and pgrep are there and sets CLK_TCK (ticks per second).
cpu_setup() {
    [[ -r /proc/self/stat ]] || die "/proc/PID/stat is not readable: the CPU column needs Linux /proc"
    command -v pgrep >/dev/null || die "pgrep (procps) is required"
    CLK_TCK="$(getconf CLK_TCK 2>/dev/null || true)"
    is_uint "$CLK_TCK" && [[ "$CLK_TCK" -gt 0 ]] || die "getconf CLK_TCK failed (got '$CLK_TCK')"
}

# proc_tree PID...: prints each PID and all its descendants (nginx: the master and its workers),
# one a line. Bounded: at most 8 levels deep.
proc_tree() {
    local depth="${PROC_TREE_DEPTH:-0}" p
    for p in "$@"; do
        [[ -n "$p" && -d "/proc/$p" ]] || continue
        echo "$p"
        [[ $depth -lt 8 ]] || continue
        # shellcheck disable=SC2046  # one pid per word
        PROC_TREE_DEPTH=$((depth + 1)) proc_tree $(pgrep -P "$p" 2>/dev/null || true)
    done
}

# cpu_ticks PID...: utime + stime, in clock ticks, summed over the PIDs and all their descendants.
# A process that is gone contributes nothing.
cpu_ticks() {
    local total=0 p stat rest
    local -a f
    for p in $(proc_tree "$@"); do
        stat="$(cat "/proc/$p/stat" 2>/dev/null)" || continue
        # Field 2 (comm) may hold spaces or parentheses: split after its closing ") ".
        rest="${stat##*) }"
        read -r -a f <<<"$rest"
        # f[0] is field 3 (state): utime (14) is f[11], stime (15) is f[12].
        is_uint "${f[11]:-}" && is_uint "${f[12]:-}" || continue
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# cpu_begin NAME PID...: starts a measured window for the process group NAME (the PIDs and their
# descendants, as found now and again at cpu_end). Call it right before the load starts.
declare -a CPU_NAMES=()
declare -A CPU_PIDS=() CPU_START=()
cpu_begin() {
    local name="$1"
    shift
    [[ $# -gt 0 ]] || die "cpu_begin $name: no process given"
    CPU_NAMES+=("$name")
    CPU_PIDS[$name]="$*"
    CPU_START[$name]="$(cpu_ticks "$@")"
}

# cpu_end OUTFILE: ends the windows begun since the last cpu_end, right after the load stopped, and
# writes one line "NAME<TAB>ticks used in the window" per group to OUTFILE.cpu, which
# oha_summaries reads beside the oha JSON file OUTFILE.
cpu_end() {
    local out="$1" name now
    : >"$out.cpu"
    for name in "${CPU_NAMES[@]}"; do
        # shellcheck disable=SC2086  # the pids, one a word
        now="$(cpu_ticks ${CPU_PIDS[$name]})"
        printf '%s\t%s\n' "$name" "$((now - CPU_START[$name]))" >>"$out.cpu"
    done
    CPU_NAMES=()
    CPU_PIDS=()
    CPU_START=()
}

# ---------------------------------------------------------------- profiling --
# With BENCH_PERF_DIR set, `perf record` samples the process under test (all its threads, with
# call graphs) over each measured run, into BENCH_PERF_DIR/NAME.data; read one with
# `perf report -i FILE --no-children`. A build with frame pointers gives whole call chains:
# RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release -p gatehouse.
PERF_PID=""

# perf_begin NAME PID: starts sampling PID (no-op without BENCH_PERF_DIR).
perf_begin() {
    [[ -n "${BENCH_PERF_DIR:-}" ]] || return 0
    command -v perf >/dev/null || die "BENCH_PERF_DIR is set but perf is not installed (apt-get install linux-perf)"
    mkdir -p "$BENCH_PERF_DIR"
    perf record -q -e cpu-clock -F 999 -g -p "$2" -o "$BENCH_PERF_DIR/$1.data" >/dev/null 2>&1 &
    PERF_PID=$!
}

# perf_end: stops the sampling perf_begin started and waits until its file is written.
perf_end() {
    [[ -n "$PERF_PID" ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
}

# ------------------------------------------------------------------ report --
# oha_summaries RESULTS: RESULTS has one line per run, tab-separated, the oha
# JSON file last. Prints one JSON object per run: "cols" (the other columns),
# "attempts" (responses of any status plus transport errors), "ok" (200s),
# "bad" (the rest), "rps" (200s per second of wall time), "p50" and "p99" (in
# seconds, over all responses; null if missing) and "detail" (" [429: 12]",
# the breakdown of the non-200s, or ""), and, when the CPU file OUTFILE.cpu
# of cpu_end exists, "cpu": {group: CPU µs per response (any status)} and
# "cpu_ticks": {group: ticks}. oha's summary.successRate ignores
# the status, hence the counting here. Requests cut off at the deadline are
# not counted (there are none with --wait-ongoing-requests-after-deadline).
oha_summaries() {
    python3 - "$1" "${CLK_TCK:-0}" <<'PY'
import json, os, sys

DEADLINE = "aborted due to deadline"

hz = int(sys.argv[2])
with open(sys.argv[1]) as f:
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
for *cols, path in rows:
    with open(path) as f:
        d = json.load(f)
    status = {str(k): int(v) for k, v in (d.get("statusCodeDistribution") or {}).items()}
    errors = {k: int(v) for k, v in (d.get("errorDistribution") or {}).items() if k != DEADLINE}
    ok = status.get("200", 0)
    attempts = sum(status.values()) + sum(errors.values())
    bad = attempts - ok
    total_s = float(d["summary"]["total"])
    pct = d.get("latencyPercentiles") or {}
    detail = ""
    if bad:
        parts = [f"{k}: {v}" for k, v in sorted(status.items()) if k != "200"]
        parts += [f"{k}: {v}" for k, v in sorted(errors.items())]
        detail = " [" + "; ".join(parts) + "]"
    # CPU per completed request: ticks over the window / responses of any status (the server
    # answered each of them; transport errors are not counted).
    cpu, ticks = {}, {}
    responses = sum(status.values())
    if hz > 0 and os.path.exists(path + ".cpu"):
        with open(path + ".cpu") as f:
            for line in f:
                if line.strip():
                    name, t = line.rstrip("\n").split("\t")
                    ticks[name] = int(t)
                    cpu[name] = int(t) * 1e6 / hz / responses if responses else None
    print(json.dumps(dict(
        cpu=cpu, cpu_ticks=ticks,
        cols=cols, attempts=attempts, ok=ok, bad=bad, detail=detail,
        rps=ok / total_s if total_s > 0 else 0.0,
        p50=pct.get("p50"), p99=pct.get("p99"),
    )))
PY
}

# rss_of PID -> peak RSS of a running process ("12.3 MiB"), or nothing
rss_of() { awk '/^VmHWM:/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status" 2>/dev/null || true; }

# load_average -> the 1, 5 and 15 min load averages ("2.12 2.48 2.24"): other work on the machine
# takes CPU from the server and the load generator.
load_average() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "n/a"; }

# machine_lines: the report's date, commit, machine and kernel lines (Markdown list).
machine_lines() {
    local cpu_model mem_total git_rev
    cpu_model="$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
    mem_total="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || true)"
    git_rev="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [[ -n "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
        git_rev="$git_rev (dirty)"
    fi
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- commit: $git_rev"
    echo "- machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, ${mem_total:-unknown} RAM"
    echo "- kernel: $(uname -srm)"
}

# publish_report FILE: prints the report on stdout and copies it to BENCH_OUT if set.
publish_report() {
    cat "$1"
    if [[ -n "$BENCH_OUT" ]]; then
        cp "$1" "$BENCH_OUT"
        log "report written to $BENCH_OUT"
    fi
}
