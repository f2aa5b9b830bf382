#!/usr/bin/env bash
# A tour of Gatehouse and its five reference applications, through the gateway.
#
# Start the server first, with an administrator:
#   GATEHOUSE_ADMIN_USERNAME=admin GATEHOUSE_ADMIN_PASSWORD='change me please' \
#     cargo run --release -p gatehouse -- serve
# then, in another terminal:
#   ADMIN_PASSWORD='change me please' examples/tour.sh
#
# Needs curl and python3 (to read JSON). Every step checks its answer and stops the tour if it
# is not what it should be.
set -euo pipefail

AUTH="${AUTH:-http://127.0.0.1:8080}"
GATEWAY="${GATEWAY:-http://127.0.0.1:8000}"
ADMIN_USERNAME="${ADMIN_USERNAME:-admin}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:?set ADMIN_PASSWORD to the GATEHOUSE_ADMIN_PASSWORD the server started with}"

step() { printf '\n== %s\n' "$*"; }
json() { python3 -c "import sys, json; v = json.load(sys.stdin)$1; print(v if isinstance(v, str) else json.dumps(v))"; }
fail() { printf 'tour failed: %s\n' "$*" >&2; exit 1; }

# call METHOD URL TOKEN [JSON BODY] -> prints the body; fails unless the status is EXPECT (default 200)
call() {
    local method="$1" url="$2" token="$3" body="${4:-}" expect="${EXPECT:-200}" out status
    out="$(mktemp)"
    # The token goes to curl on its standard input, never on a command line others can see.
    local args=(-sS -o "$out" -w '%{http_code}' -X "$method" -K -)
    [[ -z "$body" ]] || args+=(-H 'Content-Type: application/json' -d "$body")
    status="$(printf 'header = "Authorization: Bearer %s"\n' "$token" | curl "${args[@]}" "$url")" \
        || fail "$method $url: no answer"
    cat "$out"; rm -f "$out"
    [[ "$status" == "$expect" ]] || fail "$method $url answered $status, expected $expect"
}

login() {
    printf '%s' "$2" | curl -sS --fail-with-body -d grant_type=password -d client_id=gatehouse-web \
        --data-urlencode "username=$1" --data-urlencode "password@-" "$AUTH/oauth2/token" | json '["access_token"]'
}

step "1. A machine client registers itself (RFC 7591) and reads the crypto rates"
registration="$(curl -sS --fail-with-body -H 'Content-Type: application/json' \
    -d '{"client_name":"tour machine","scope":"rates:read"}' "$AUTH/oauth2/register")"
client_id="$(json '["client_id"]' <<<"$registration")"
client_secret="$(json '["client_secret"]' <<<"$registration")"
echo "registered $client_id"
machine_token="$(printf 'user = "%s:%s"\n' "$client_id" "$client_secret" \
    | curl -sS --fail-with-body -K - -d grant_type=client_credentials "$AUTH/oauth2/token" | json '["access_token"]')"
rates="$(call GET "$GATEWAY/api/rates" "$machine_token")"
echo "$rates"
python3 -c 'import sys, json; sys.exit(0 if any(r["symbol"] == "BTC" for r in json.load(sys.stdin)) else 1)' \
    <<<"$rates" || fail "no BTC rate"

step "2. A person signs up, logs in, and converts 100 EUR to GBP"
user="tour$RANDOM$RANDOM"
curl -sS --fail-with-body -H 'Content-Type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"$user-password\",\"email\":\"$user@example.com\"}" "$AUTH/users" >/dev/null
user_token="$(login "$user" "$user-password")"
conversion="$(call GET "$GATEWAY/api/fx/convert?from=EUR&to=GBP&amount=100" "$user_token")"
echo "$conversion"
[[ "$(json '["converted_amount"]' <<<"$conversion")" == "85.87" ]] || fail "100 EUR should be 85.87 GBP at the seeded rates"

step "3. The welcome message depends on who asks"
admin_token="$(login "$ADMIN_USERNAME" "$ADMIN_PASSWORD")"
call GET "$GATEWAY/api/messages/welcome" "$admin_token"; echo
call GET "$GATEWAY/api/messages/welcome" "$user_token"; echo
call GET "$GATEWAY/api/messages/welcome" "$machine_token"; echo

step "4. The person places an order (the payment is simulated: paid or payment_failed)"
EXPECT=201 call POST "$GATEWAY/api/orders" "$user_token" '{"items":[{"product_id":"cable","quantity":1}]}'; echo
call GET "$GATEWAY/api/orders" "$user_token" >/dev/null

step "5. The person writes a post, and the administrator votes on it"
post="$(EXPECT=201 call POST "$GATEWAY/api/posts" "$user_token" '{"content":"Hello from the tour"}')"
post_id="$(json '["id"]' <<<"$post")"
EXPECT=201 call POST "$GATEWAY/api/posts/$post_id/vote" "$admin_token"; echo
EXPECT=409 call POST "$GATEWAY/api/posts/$post_id/vote" "$admin_token"; echo

step "6. The person's token is revoked; the gateway refuses it within a second"
printf '%s' "$user_token" | curl -sS --fail-with-body -d client_id=gatehouse-web --data-urlencode "token@-" \
    "$AUTH/oauth2/revoke"
sleep 1
EXPECT=401 call GET "$GATEWAY/api/messages/welcome" "$user_token"; echo

printf '\nThe tour is complete.\n'
