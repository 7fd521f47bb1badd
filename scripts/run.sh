#!/usr/bin/env bash
# make run: starts the example backends (bin/shopd) and the gateway with its
# embedded default config (bin/edgegate), prints what to try, and stops both
# on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
GRPCURL=.cache/bin/grpcurl
GW=127.0.0.1:8080

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

./bin/shopd 2> >(sed 's/^/[shopd] /' >&2) &
pids+=($!)
./bin/edgegate serve 2> >(sed 's/^/[edgegate] /' >&2) &
pids+=($!)

for _ in $(seq 1 50); do
  if $GRPCURL -plaintext -max-time 1 $GW grpc.health.v1.Health/Check >/dev/null 2>&1; then break; fi
  sleep 0.2
done

cat <<EOT

edgegate is serving native gRPC, gRPC-Web and REST/JSON on $GW, in front of the example
backends: catalog 127.0.0.1:9101, orders 127.0.0.1:9102, users 127.0.0.1:9103, echo 127.0.0.1:9104

Try, in another terminal:
  curl -s $GW/v1/shelves/1/books/1
  curl -s '$GW/v1/books?genre=GENRE_SCIENCE&tags=physics'
  curl -s -X POST $GW/v1/orders -H 'Content-Type: application/json' -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":2}]}'
  curl -s -X POST $GW/v1/orders -H 'Content-Type: application/json' -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":50}]}'
  curl -sN -H 'Accept: text/event-stream' $GW/v1/orders/o-1:track
  curl -s $GW/openapi.json | head -20
  $GRPCURL -plaintext $GW list
  $GRPCURL -plaintext -d '{"name":"shelves/1/books/1"}' $GW shop.catalog.v1.CatalogService/GetBook
  $GRPCURL -plaintext -d '{"parent":"shelves/1"}' $GW shop.catalog.v1.CatalogService/ListBooks
  $GRPCURL -plaintext -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":2}]}' $GW shop.orders.v1.OrdersService/CreateOrder
  $GRPCURL -plaintext -d '{"user_id":"ada","items":[{"book":"shelves/1/books/1","quantity":50}]}' $GW shop.orders.v1.OrdersService/CreateOrder
  $GRPCURL -plaintext -d '{"order_id":"o-1"}' $GW shop.orders.v1.OrdersService/TrackOrder
  $GRPCURL -plaintext -d '{"text":"hello"}' $GW shop.users.v1.UsersService/Chat
  $GRPCURL -plaintext -H 'x-request-id: my-id-1' -v -d '{"message":"hi"}' $GW edgegate.testing.v1.EchoService/Unary
  ./bin/edgegate routes
  curl -s 127.0.0.1:9901/readyz; curl -s 127.0.0.1:9901/metrics | grep edgegate_calls_handled_total

Ctrl-C stops both.
EOT
wait -n "${pids[@]}"
