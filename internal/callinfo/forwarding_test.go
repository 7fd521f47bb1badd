package callinfo_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/edgegate/edgegate/internal/callinfo"
)

// A native call's forwarding is what its client sent, from its metadata;
// an HTTP door's record keeps what the door recorded from the request,
// whatever the metadata says by the time the chain runs.
func TestForwardingRecorded(t *testing.T) {
	md := metadata.Pairs(":authority", "gw:443", "x-forwarded-for", "203.0.113.7", "x-forwarded-for", "10.0.0.1",
		"x-forwarded-proto", "https", "x-forwarded-host", "app.example", "forwarded", "for=203.0.113.7")
	_, info := callinfo.Begin(metadata.NewIncomingContext(context.Background(), md), "/a.v1.S/M", nil)
	want := callinfo.Forwarding{
		For: []string{"203.0.113.7", "10.0.0.1"}, Proto: []string{"https"}, Host: []string{"app.example"},
		Forwarded: []string{"for=203.0.113.7"}, Authority: "gw:443",
	}
	if !reflect.DeepEqual(info.ClientForwarding, want) {
		t.Errorf("native: %+v, want %+v", info.ClientForwarding, want)
	}

	// The REST door: the record is made before the request reaches the
	// handler that changes the metadata (grpc-gateway appends the peer).
	door := callinfo.New(callinfo.DoorREST)
	req := httptest.NewRequest(http.MethodPost, "http://gw:8080/v1/x", nil)
	req.Header.Add("X-Forwarded-For", "203.0.113.7")
	req.Header.Add("X-Forwarded-For", "198.51.100.1")
	req = req.WithContext(callinfo.NewContext(req.Context(), door))
	var seen callinfo.Forwarding
	callinfo.RecordHTTPForwarding(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctx := metadata.NewIncomingContext(r.Context(), metadata.Pairs("x-forwarded-for", "203.0.113.7, 198.51.100.1, 127.0.0.1"))
		_, info := callinfo.Begin(ctx, "/a.v1.S/M", nil)
		seen = info.ClientForwarding
	})).ServeHTTP(httptest.NewRecorder(), req)
	want = callinfo.Forwarding{For: []string{"203.0.113.7", "198.51.100.1"}, Authority: "gw:8080"}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("REST: %+v, want %+v", seen, want)
	}
}
