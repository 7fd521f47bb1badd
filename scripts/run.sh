#!/usr/bin/env bash
# make run: starts the example backends (bin/shopd) and the gateway
# (bin/edgegate, with the embedded default config or CONFIG), prints what to
# try, and stops both on Ctrl-C.
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

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$SHOPD" "${shopd_flags[@]}" 2> >(sed 's/^/[shopd] /' >&2) &
pids+=($!)
"$EDGEGATE" serve "${cfgargs[@]}" 2> >(sed 's/^/[edgegate] /' >&2) &
pids+=($!)

for _ in $(seq 1 50); do
  if "$GRPCURL" $GRPC_TLS -max-time 1 "$GW" grpc.health.v1.Health/Check >/dev/null 2>&1; then break; fi
  sleep 0.2
done

backends="catalog 127.0.0.1:9101, orders 127.0.0.1:9102, users 127.0.0.1:9103, echo 127.0.0.1:9104"
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
  curl -s $CURL_TLS'$URL/v1/books?genre=GENRE_SCIENCE&tags=physics'
  curl -s $CURL_TLS-X POST $URL/v1/orders -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":2}]}'
  curl -s $CURL_TLS-X POST $URL/v1/orders -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":50}]}'
  curl -sN $CURL_TLS-H 'Accept: text/event-stream' $URL/v1/orders/o-1:track
  curl -s $CURL_TLS$URL/openapi.json | head -20
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
wait -n "${pids[@]}"
