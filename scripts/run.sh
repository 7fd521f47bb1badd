#!/usr/bin/env bash
# make run: starts the example backends (bin/shopd) and the gateway
# (bin/edgegate, with the embedded default config or CONFIG), waits until the
# gateway answers and is ready, prints what to try, and stops both on Ctrl-C.
# When either exits first (a port taken, say), it exits non-zero at once with
# the error that process printed.
#
# Environment (make run passes CONFIG and GATEWAY_ADDR):
#   CONFIG        the config file, for edgegate serve -c; empty: the embedded default
#   GATEWAY_ADDR  the address the printed commands use; empty: the config's first
#                 listener, as `edgegate validate` prints it (a wildcard host as
#                 loopback). When set, it must be that listener's address (any host
#                 with its port when the listener's host is a wildcard).
#   SHOPD_FLAGS   flags of bin/shopd, e.g. "-catalog 127.0.0.1:9201"
#   EDGEGATE, SHOPD, GRPCURL  the binaries; default bin/edgegate, bin/shopd,
#                 .cache/bin/grpcurl (paths relative to the repository)
#   STARTUP_TIMEOUT  seconds to wait for the gateway to be ready; default 20
set -euo pipefail
die() { echo "make run: $*" >&2; exit 1; }

CONFIG=${CONFIG:-}
if [ -n "$CONFIG" ]; then
  [ -f "$CONFIG" ] || die "CONFIG=$CONFIG: no such file"
  CONFIG=$(realpath -- "$CONFIG")   # before the cd below
fi
cd "$(dirname "$0")/.."
EDGEGATE=${EDGEGATE:-./bin/edgegate}
SHOPD=${SHOPD:-./bin/shopd}
GRPCURL=${GRPCURL:-.cache/bin/grpcurl}
for b in "$EDGEGATE" "$SHOPD" "$GRPCURL"; do
  [ -x "$b" ] || die "$b is missing: make run builds it"
done
cfgargs=()
if [ -n "$CONFIG" ]; then cfgargs=(-c "$CONFIG"); fi
read -ra shopd_flags <<<"${SHOPD_FLAGS:-}"

# Where the config listens, from the binary itself: edgegate validate prints
# "listener NAME ADDRESS plaintext|tls PROTOCOL..." per listener, then
# "admin ADDRESS|off".
summary=$("$EDGEGATE" validate "${cfgargs[@]}") || die "${CONFIG:-the embedded default config} is not valid (see above)"
read -r _ _ listen security protocols <<<"$(grep -m1 '^listener ' <<<"$summary")"
admin=$(awk '$1 == "admin" {print $2}' <<<"$summary")

# client ADDR: ADDR with a wildcard host ("", 0.0.0.0, [::]) as loopback.
client() {
  local host=${1%:*} port=${1##*:}
  case $host in "" | 0.0.0.0) host=127.0.0.1 ;; "[::]") host="[::1]" ;; esac
  echo "$host:$port"
}
[ "${listen##*:}" != 0 ] || die "the first listener's address is $listen: make run needs a fixed port"
GW=$(client "$listen")
if [ -n "${GATEWAY_ADDR:-}" ]; then
  if [ "$GW" = "$listen" ]; then
    [ "$GATEWAY_ADDR" = "$listen" ] || die "GATEWAY_ADDR=$GATEWAY_ADDR is not the config's first listener, $listen"
  else
    [ "${GATEWAY_ADDR##*:}" = "${listen##*:}" ] || die "GATEWAY_ADDR=$GATEWAY_ADDR is not on the port of the config's first listener, $listen"
  fi
  GW=$GATEWAY_ADDR
fi
URL=http://$GW GRPC_TLS=-plaintext CURL_TLS=
if [ "$security" = tls ]; then URL=https://$GW GRPC_TLS=-insecure CURL_TLS="-k "; fi
ADMIN=
if [ "$admin" != off ] && [ "${admin##*:}" != 0 ]; then ADMIN=$(client "$admin"); fi

# answers ADDR: something accepts TCP connections on ADDR.
answers() {
  local host=${1%:*} port=${1##*:}
  host=${host#[}
  host=${host%]}
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}
# Something else on the gateway's ports would answer the checks below for
# it: edgegate will exit with its bind error, which is then reported.
taken=
for a in "$GW" $ADMIN; do
  if answers "$a"; then taken=$a && break; fi
done

tmp=$(mktemp -d)
pids=() seds=() names=()
# handles_int PID: PID has set up its SIGINT handler. A background job of
# this script starts with SIGINT ignored, and the gateway sets its handler
# only once its config is loaded: a SIGINT before that would be lost, and
# the wait below would never end. (Linux's /proc; elsewhere, assumed.)
handles_int() {
  local caught
  caught=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 0
  [ -z "$caught" ] || (((16#$caught & 2) != 0))
}
cleanup() {
  # SIGINT, as Ctrl-C sends it: the gateway skips its drain period (made
  # for load balancers), and calls in flight still finish. A process that
  # does not handle SIGINT yet gets SIGTERM, which ends it at once.
  local pid
  for pid in "${pids[@]}"; do
    if handles_int "$pid"; then
      kill -INT "$pid" 2>/dev/null || true
    else
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME COMMAND...: runs COMMAND in the background, its stderr shown
# with a [NAME] prefix. The prefixer reads a FIFO, so that it is a job of
# this shell whose last lines can be waited for.
start() {
  local name=$1
  shift
  mkfifo "$tmp/$name"
  sed -u "s/^/[$name] /" <"$tmp/$name" >&2 &
  seds+=($!)
  "$@" 2>"$tmp/$name" &
  pids+=($!)
  names+=("$name")
}
start shopd "$SHOPD" "${shopd_flags[@]}"
start edgegate "$EDGEGATE" serve "${cfgargs[@]}"

# alive: exit at once, with the error the process printed, when shopd or
# edgegate has exited.
alive() {
  local i status dead=
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      status=0
      wait "${pids[i]}" || status=$?
      wait "${seds[i]}" || true
      dead+="${dead:+, }${names[i]} exited (status $status)"
    fi
  done
  if [ -n "$dead" ]; then die "$dead before the gateway was ready; the error is above"; fi
}

# ready: the gateway answers on GW (gRPC health SERVING when it serves gRPC)
# and its admin /readyz says ready (every cluster has a connected endpoint);
# else why says what is missing.
why=
ready() {
  local out code
  if [ -n "$taken" ]; then why="something else already listens on $taken"; return 1; fi
  if ! answers "$GW"; then why="nothing answers on $GW"; return 1; fi
  if [[ " $protocols " == *" grpc "* ]]; then
    out=$("$GRPCURL" $GRPC_TLS -max-time 1 "$GW" grpc.health.v1.Health/Check 2>&1) || true
    if [[ $out != *'"SERVING"'* ]]; then why="gRPC health on $GW: ${out//$'\n'/ }"; return 1; fi
  fi
  if [ -n "$ADMIN" ] && command -v curl >/dev/null; then
    code=$(curl -s -m 1 -o "$tmp/readyz" -w '%{http_code}' "http://$ADMIN/readyz") || code=000
    if [ "$code" = 000 ]; then why="nothing answers on $ADMIN/readyz"; return 1; fi
    if [ "$code" != 200 ]; then why="$ADMIN/readyz: HTTP $code $(tr -s ' \n' ' ' <"$tmp/readyz")"; return 1; fi
  fi
}

startup_timeout=${STARTUP_TIMEOUT:-20}
deadline=$((SECONDS + startup_timeout + 1)) # SECONDS counts whole seconds
until alive && ready; do
  if ((SECONDS >= deadline)); then die "edgegate is not ready after ${startup_timeout}s: $why"; fi
  sleep 0.2
done
alive

backends="catalog 127.0.0.1:9101, orders 127.0.0.1:9102, users 127.0.0.1:9103, echo 127.0.0.1:9104, legacy (HTTP) 127.0.0.1:9105"
if [ -n "${SHOPD_FLAGS:-}" ]; then backends="shopd $SHOPD_FLAGS (the others on their defaults)"; fi
cat <<EOT

edgegate is serving ${protocols// /, } on $GW (config: ${CONFIG:-the embedded default}),
in front of the example backends: $backends
EOT
if [ -n "$CONFIG" ]; then
  echo "(The commands below call the example shop API: they work as far as $CONFIG routes it.)"
fi
cat <<EOT

Try, in another terminal:
  curl -s $CURL_TLS$URL/v1/shelves/1/books/1
  curl -si $CURL_TLS$URL/v1/shelves/1/books/1 | grep -i '^cache-status'   # within 5s: edgegate; hit
  curl -s $CURL_TLS'$URL/v1/books?genre=GENRE_SCIENCE&tags=physics'
  curl -s $CURL_TLS'$URL/v1/books?genre=1%27%20OR%20%271%27%3D%271'     # SQL injection: 403 from the WAF
  curl -s $CURL_TLS-X POST $URL/v1/orders -H 'Content-Type: application/json' -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":2}]}'
  curl -s $CURL_TLS-X POST $URL/v1/orders -H 'Content-Type: application/json' -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":50}]}'
  curl -sN $CURL_TLS-H 'Accept: text/event-stream' $URL/v1/orders/o-1:track
  curl -s $CURL_TLS'$URL/v1/storefront/shelves/1/books/1?user_id=ada'     # composite: book + author's books + orders, one call
  curl -s $CURL_TLS$URL/openapi.json | head -20
  curl -s $CURL_TLS--compressed -D - -o /dev/null $URL/openapi.json | grep -i content-encoding
  curl -s $CURL_TLS$URL/welcome/
  curl -s $CURL_TLS$URL/legacy/status
  $GRPCURL $GRPC_TLS $GW list
  $GRPCURL $GRPC_TLS -d '{"name":"shelves/1/books/1"}' $GW shop.catalog.v1.CatalogService/GetBook
  $GRPCURL $GRPC_TLS -d '{"parent":"shelves/1"}' $GW shop.catalog.v1.CatalogService/ListBooks
  $GRPCURL $GRPC_TLS -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":2}]}' $GW shop.orders.v1.OrdersService/CreateOrder
  $GRPCURL $GRPC_TLS -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":50}]}' $GW shop.orders.v1.OrdersService/CreateOrder
  $GRPCURL $GRPC_TLS -d '{"order_id":"o-1"}' $GW shop.orders.v1.OrdersService/TrackOrder
  $GRPCURL $GRPC_TLS -d '{"text":"hello"}' $GW shop.users.v1.UsersService/Chat
  $GRPCURL $GRPC_TLS -H 'x-request-id: my-id-1' -v -d '{"message":"hi"}' $GW edgegate.testing.v1.EchoService/Unary
  $EDGEGATE routes${CONFIG:+ -c $CONFIG}
EOT
if [ -n "$ADMIN" ]; then
  echo "  curl -s $ADMIN/readyz; curl -s $ADMIN/metrics | grep edgegate_calls_handled_total"
fi
cat <<EOT

Ctrl-C stops both.
EOT
status=0
wait -n "${pids[@]}" || status=$?
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[i]}" 2>/dev/null; then echo "make run: ${names[i]} exited (status $status): stopping" >&2; fi
done
exit "$status"
