package frontdoor

import (
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	// Error details in google.rpc.Status bodies resolve by type URL.
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
)

// HTTPStatus is the one gRPC code → HTTP status mapping of the gateway
// (the standard table: NOT_FOUND 404, UNAUTHENTICATED 401,
// RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, …).
func HTTPStatus(c codes.Code) int { return runtime.HTTPStatusFromCode(c) }

var statusJSON = protojson.MarshalOptions{}

// WriteStatus answers with st as a google.rpc.Status JSON body, and the
// HTTP status httpCode, or the mapped status of st's code when httpCode is
// 0.
func WriteStatus(w http.ResponseWriter, st *status.Status, httpCode int) {
	if httpCode == 0 {
		httpCode = HTTPStatus(st.Code())
	}
	body, err := statusJSON.Marshal(st.Proto())
	if err != nil {
		body = []byte(`{"code":13,"message":"edgegate: cannot encode the error"}`)
		httpCode = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Transfer-Encoding")
	w.WriteHeader(httpCode)
	_, _ = w.Write(body) //nolint:gosec // G705: a protojson google.rpc.Status served as application/json, never HTML
}

// Error answers with a status of code and msg.
func Error(w http.ResponseWriter, code codes.Code, httpCode int, msg string) {
	WriteStatus(w, status.New(code, msg), httpCode)
}
