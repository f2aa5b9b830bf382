#!/usr/bin/env python3
"""Fuzzes every OpenAPI document `gatehouse serve` publishes, against the real binary.

Starts `gatehouse serve` on free loopback ports with a fresh SQLite data directory, reads the
addresses it bound from GATEHOUSE_READY_FILE, signs in its first administrator and registers a
client, then for the authorization server's document and each reference application's:

1. validates it as OpenAPI 3.1 (openapi-spec-validator), and
2. runs schemathesis against it, authenticated (the bearer scheme with the administrator's
   token, the client_basic scheme with the client's credentials), with the checks
   not_a_server_error, status_code_conformance, content_type_conformance and
   response_schema_conformance.

The server's document is fuzzed at the server; the applications' through the gateway, where
they are published (/api/NAME/openapi.json) and where clients call them.

Usage: fuzz_openapi.py GATEHOUSE_BINARY [DOCUMENT ...]   (documents: server, rates, fx, ...)
Bounds come from the environment: GATEHOUSE_FUZZ_MAX_EXAMPLES (per operation, default 8),
GATEHOUSE_FUZZ_MAX_TIME (seconds per document, default 25), GATEHOUSE_FUZZ_SEED (default fixed,
so a failure repeats; "random" for a new one each run).
"""

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
ADMIN = "fuzz-admin"
# The applications the gateway routes; the shop is pages, not an API.
APPS = ["rates", "fx", "messages", "orders", "posts"]
READY_TIMEOUT_SECS = 120


def log(message):
    print(f"==> fuzz: {message}", file=sys.stderr, flush=True)


def request(method, url, *, form=None, body=None, headers=None):
    """(status, parsed JSON or None) of one request."""
    headers = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, None


def wait_ready(server, ready_file):
    started = time.monotonic()
    while True:
        try:
            with open(ready_file, encoding="utf-8") as f:
                text = f.read()
            if text:
                return json.loads(text)
        except (FileNotFoundError, ValueError):
            pass
        if server.poll() is not None:
            raise RuntimeError(f"gatehouse serve exited ({server.returncode}) before it was ready")
        if time.monotonic() - started > READY_TIMEOUT_SECS:
            raise RuntimeError(f"gatehouse serve was not ready after {READY_TIMEOUT_SECS} s")
        time.sleep(0.05)


def credentials(auth, password):
    """The administrator's access token and a registered client's id and secret."""
    status, answer = request(
        "POST",
        f"{auth}/oauth2/token",
        form={
            "grant_type": "password",
            "client_id": "gatehouse-web",
            "username": ADMIN,
            "password": password,
        },
    )
    if status != 200:
        raise RuntimeError(f"the administrator's sign-in answered {status}: {answer}")
    token = answer["access_token"]
    status, client = request(
        "POST",
        f"{auth}/oauth2/register",
        body={"client_name": "openapi fuzzer", "scope": "rates:read"},
    )
    if status != 201:
        raise RuntimeError(f"registering the fuzzer's client answered {status}: {client}")
    return token, client["client_id"], client["client_secret"]


def validate(name, document):
    """The document's OpenAPI 3.1 errors, as lines."""
    from openapi_spec_validator import OpenAPIV31SpecValidator

    if not str(document.get("openapi", "")).startswith("3.1"):
        return [f"{name}: openapi is {document.get('openapi')!r}, not 3.1.x"]
    errors = []
    for error in OpenAPIV31SpecValidator(document).iter_errors():
        where = "/".join(str(p) for p in error.absolute_path)
        errors.append(f"{name}: {where}: {error.message}")
    return errors


def fuzz(venv_bin, name, document_file, base_url, config_file, env, report_dir):
    max_examples = os.environ.get("GATEHOUSE_FUZZ_MAX_EXAMPLES", "8")
    max_time = os.environ.get("GATEHOUSE_FUZZ_MAX_TIME", "25")
    seed = os.environ.get("GATEHOUSE_FUZZ_SEED", "20261201")
    command = [
        os.path.join(venv_bin, "schemathesis"),
        "--config-file",
        config_file,
        "--no-color",
        "run",
        document_file,
        "--url",
        base_url,
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        max_examples,
        "--max-time",
        max_time,
        "--request-timeout",
        "10",
        # One worker: schemathesis's coverage phase shares caches between workers, and two of
        # them have failed it with an internal KeyError.
        "--workers",
        "1",
        "--continue-on-failure",
        "--suppress-health-check",
        "all",
        "--generation-database",
        "none",
        "--output-truncate",
        "true",
        "--report",
        "junit",
        "--report-dir",
        report_dir,
        "--report-junit-path",
        os.path.join(report_dir, f"{name}.xml"),
    ]
    if seed != "random":
        command += ["--seed", seed]
    log(f"{name}: schemathesis at {base_url} (max {max_examples} examples per operation, {max_time} s)")
    started = time.monotonic()
    result = subprocess.run(command, env=env, check=False)
    log(f"{name}: {'passed' if result.returncode == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return result.returncode == 0


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    binary = sys.argv[1]
    wanted = sys.argv[2:] or ["server", *APPS]
    venv_bin = os.path.dirname(sys.executable)
    with tempfile.TemporaryDirectory(prefix="gatehouse-fuzz.") as tmp:
        ready_file = os.path.join(tmp, "ready.json")
        password = secrets.token_urlsafe(18)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("GATEHOUSE_KEK", "GATEHOUSE_DATABASE_URL", "GATEHOUSE_CONFIG")
        }
        env.update(
            GATEHOUSE_READY_FILE=ready_file,
            GATEHOUSE_ADMIN_USERNAME=ADMIN,
            GATEHOUSE_ADMIN_PASSWORD=password,
            GATEHOUSE_LOG="error",
        )
        server_log = os.path.join(tmp, "serve.log")
        with open(server_log, "w", encoding="utf-8") as log_file:
            server = subprocess.Popen(
                [
                    binary,
                    "serve",
                    "--data-dir",
                    os.path.join(tmp, "data"),
                    "--auth-listen",
                    "127.0.0.1:0",
                    "--gateway-listen",
                    "127.0.0.1:0",
                    "--apps-ports-from",
                    "0",
                    "--metrics-listen",
                    "127.0.0.1:0",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        try:
            ready = wait_ready(server, ready_file)
            auth = f"http://{ready['auth']}"
            gateway = f"http://{ready['gateway']}"
            token, client_id, client_secret = credentials(auth, password)
            documents = []
            for name in wanted:
                if name == "server":
                    documents.append((name, f"{auth}/openapi.json", auth))
                elif name in APPS:
                    documents.append((name, f"{gateway}/api/{name}/openapi.json", gateway))
                else:
                    raise RuntimeError(f"no document {name!r}; the documents are server, {', '.join(APPS)}")
            config_file = os.path.join(tmp, "schemathesis.toml")
            with open(config_file, "w", encoding="utf-8") as f:
                # The secrets stay in the environment; the file names them only. Values seen in
                # responses are not fed back as input: the fuzzer would find the administrator's
                # own id and role names, and block them or cut their scopes (killing its token).
                f.write(
                    "[phases.coverage.extra-data-sources]\n"
                    "responses = false\n"
                    "[phases.fuzzing.extra-data-sources]\n"
                    "responses = false\n"
                    "[auth.openapi.bearer]\n"
                    'bearer = "${GATEHOUSE_FUZZ_TOKEN}"\n'
                    "[auth.openapi.client_basic]\n"
                    'username = "${GATEHOUSE_FUZZ_CLIENT_ID}"\n'
                    'password = "${GATEHOUSE_FUZZ_CLIENT_SECRET}"\n'
                )
            fuzz_env = dict(
                os.environ,
                GATEHOUSE_FUZZ_TOKEN=token,
                GATEHOUSE_FUZZ_CLIENT_ID=client_id,
                GATEHOUSE_FUZZ_CLIENT_SECRET=client_secret,
            )
            report_dir = os.path.join("target", "fuzz")
            os.makedirs(report_dir, exist_ok=True)
            invalid, failed = [], []
            for name, url, base in documents:
                status, document = request("GET", url)
                if status != 200 or not isinstance(document, dict):
                    invalid.append(f"{name}: GET {url} answered {status}")
                    continue
                errors = validate(name, document)
                log(f"{name}: {'valid OpenAPI 3.1' if not errors else f'{len(errors)} validation errors'}")
                invalid.extend(errors)
                document_file = os.path.join(tmp, f"{name}.json")
                with open(document_file, "w", encoding="utf-8") as f:
                    json.dump(document, f)
                if not fuzz(venv_bin, name, document_file, base, config_file, fuzz_env, report_dir):
                    failed.append(name)
            if server.poll() is not None:
                failed.append(f"gatehouse serve exited ({server.returncode}) during the run")
        finally:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
        for line in invalid:
            print(f"invalid: {line}", file=sys.stderr)
        if invalid or failed:
            with open(server_log, encoding="utf-8") as f:
                tail = f.read()[-4000:]
            if tail:
                print(f"--- gatehouse serve's log (end) ---\n{tail}", file=sys.stderr)
            log(f"FAILED: {len(invalid)} validation errors; fuzzing failed for: {', '.join(failed) or 'none'}")
            passed = max(0, len(documents) - len({*failed, *(line.split(":")[0] for line in invalid)}))
            print(f"fuzz: {passed} passed, {len(documents) - passed} failed")
            return 1
        log(f"{len(documents)} documents valid and fuzzed without a failure")
        print(f"fuzz: {len(documents)} passed, 0 failed")
        return 0


if __name__ == "__main__":
    sys.exit(main())
