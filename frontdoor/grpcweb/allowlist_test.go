package grpcweb

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/router"
)

// A gRPC-Web call's metadata is its allow list: the standard gRPC metadata
// and the headers the door is given; a browser's other headers, and the
// gRPC-Web protocol's own, are not metadata, and their names (never their
// values) are logged at debug level.
func TestDoorMetadataIsTheAllowList(t *testing.T) {
	var got metadata.MD
	handler := func(_ any, ss grpc.ServerStream) error {
		got, _ = metadata.FromIncomingContext(ss.Context())
		_, err := readAll(ss)
		return err
	}
	var logs bytes.Buffer
	d := New(Options{
		Core:           router.NewInProcess(nil, handler),
		ForwardHeaders: []string{"X-Tenant", "x-data-bin"},
		Log:            slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	req := httptest.NewRequest(http.MethodPost, "http://gw.example/pkg.Svc/Method", bytes.NewReader(frames([]byte("a"))))
	for k, v := range map[string]string{
		"Content-Type":      "application/grpc-web+proto",
		"Authorization":     "Bearer t",
		"X-Request-Id":      "r1",
		"Traceparent":       "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Tracestate":        "k=v",
		"X-Tenant":          "acme",
		"X-Data-Bin":        "AQI",
		"User-Agent":        "Mozilla/5.0",
		"X-Grpc-Web":        "1",
		"X-User-Agent":      "grpc-web-javascript/0.1",
		"Cookie":            "session=sekr1t",
		"Origin":            "https://app.example",
		"Referer":           "https://app.example/page",
		"Accept-Language":   "fr-FR",
		"Sec-Ch-Ua":         `"Chromium";v="130"`,
		"Sec-Fetch-Mode":    "cors",
		"X-Forwarded-For":   "203.0.113.7",
		"X-Unlisted-Custom": "u",
	} {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, req)
	if s := rec.Result().Header.Get("Grpc-Status"); s != "0" {
		t.Fatalf("grpc-status %q (%s)", s, rec.Result().Header.Get("Grpc-Message"))
	}
	want := metadata.MD{
		"authorization": {"Bearer t"},
		"x-request-id":  {"r1"},
		"traceparent":   {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"tracestate":    {"k=v"},
		"x-tenant":      {"acme"},
		"x-data-bin":    {"\x01\x02"},
		"user-agent":    {"Mozilla/5.0"},
		":authority":    {"gw.example"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metadata\n %q\nwant\n %q", got, want)
	}
	for _, k := range []string{"accept-language", "cookie", "origin", "referer", "sec-ch-ua", "sec-fetch-mode", "x-grpc-web", "x-unlisted-custom", "x-user-agent"} {
		if !strings.Contains(logs.String(), `"`+k+`"`) {
			t.Errorf("the debug line does not name %s: %s", k, logs.String())
		}
	}
	for _, s := range []string{"sekr1t", "x-forwarded-for", "x-tenant"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the debug line holds %q: %s", s, logs.String())
		}
	}
}
