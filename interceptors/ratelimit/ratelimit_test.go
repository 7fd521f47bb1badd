package ratelimit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	rl "github.com/edgegate/edgegate/interceptors/ratelimit"
	"github.com/edgegate/edgegate/internal/callinfo"
	limiter "github.com/edgegate/edgegate/ratelimit"
)

// stream is the grpc.ServerStream the interceptor sees: its context, and
// the headers set on it. Its other methods are not used by the interceptor
// (the embedded nil interface makes them panic).
type stream struct {
	grpc.ServerStream
	ctx      context.Context
	hdr      metadata.MD
	setCalls int
}

func (s *stream) Context() context.Context { return s.ctx }
func (s *stream) SetHeader(md metadata.MD) error {
	s.setCalls++
	s.hdr = metadata.Join(s.hdr, md)
	return nil
}

var errHandler = errors.New("handler's own error")

// result is how one call through the interceptor went.
type result struct {
	ss     *stream
	called bool
	err    error
}

// invoke runs one call of ctx through in, with a handler that records it
// ran and returns errHandler.
func invoke(in grpc.StreamServerInterceptor, ctx context.Context) result {
	r := result{ss: &stream{ctx: ctx}}
	r.err = in(nil, r.ss, &grpc.StreamServerInfo{FullMethod: "/shop.v1.Orders/Get"}, func(_ any, s grpc.ServerStream) error {
		r.called = true
		if s != r.ss {
			return errors.New("handler got another stream")
		}
		return errHandler
	})
	return r
}

// allowed fails t unless the call reached the handler.
func (r result) allowed(t *testing.T, what string) {
	t.Helper()
	if !r.called || !errors.Is(r.err, errHandler) {
		t.Fatalf("%s: handler called %v, err %v; want the handler's answer", what, r.called, r.err)
	}
}

// refused fails t unless the call ended with code, without the handler.
func (r result) refused(t *testing.T, what string, code codes.Code) *status.Status {
	t.Helper()
	if r.called {
		t.Fatalf("%s: the handler was called", what)
	}
	st, _ := status.FromError(r.err)
	if st.Code() != code {
		t.Fatalf("%s: %v, want %v", what, r.err, code)
	}
	return st
}

// fixedClock is a memory store's clock that stands still unless moved.
type fixedClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fixedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// memory returns a real in-memory store whose time stands still.
func memory(t *testing.T) *limiter.Memory {
	t.Helper()
	c := &fixedClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	m := limiter.NewMemory(limiter.WithClock(c.Now))
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// fakeStore records what it was asked and answers with err, or allows.
type fakeStore struct {
	mu     sync.Mutex
	keys   []string
	limits [][]limiter.Limit
	err    error
}

func (f *fakeStore) Allow(_ context.Context, key string, limits []limiter.Limit) (limiter.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, key)
	f.limits = append(f.limits, limits)
	if f.err != nil {
		return limiter.Decision{}, f.err
	}
	st := make([]limiter.LimitState, len(limits))
	for i, l := range limits {
		st[i] = limiter.LimitState{Limit: l, Remaining: int64(l.Requests), Reset: 0}
	}
	return limiter.Decision{Allowed: true, States: st}, nil
}

// hooks records the interceptor's Rejected and StoreFailed calls.
type hooks struct {
	mu          sync.Mutex
	rejected    [][2]string
	storeFailed []string
}

func (h *hooks) options(policies ...*rl.Policy) rl.Options {
	return rl.Options{
		Policies: func(context.Context) []*rl.Policy { return policies },
		Rejected: func(policy, door string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.rejected = append(h.rejected, [2]string{policy, door})
		},
		StoreFailed: func(policy string) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.storeFailed = append(h.storeFailed, policy)
		},
	}
}

func withInfo(info *callinfo.Info) context.Context {
	return callinfo.NewContext(context.Background(), info)
}

func checkHeaders(t *testing.T, what string, got metadata.MD, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: headers %v, want %v", what, got, want)
	}
	for k, v := range want {
		if g := got.Get(k); len(g) != 1 || g[0] != v {
			t.Errorf("%s: header %s = %q, want [%q]", what, k, g, v)
		}
	}
}

func TestNoPolicyPassesThrough(t *testing.T) {
	for _, policies := range [][]*rl.Policy{nil, {}} {
		in := rl.StreamServerInterceptor(rl.Options{Policies: func(context.Context) []*rl.Policy { return policies }})
		r := invoke(in, context.Background())
		r.allowed(t, "no policy")
		if r.ss.setCalls != 0 {
			t.Errorf("no policy: headers set %v", r.ss.hdr)
		}
	}
}

func TestAllowedCallsCarryTheRateLimitHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits []limiter.Limit
		policy string
		states []string // the ratelimit header of calls 1, 2, …
	}{
		{"one limit", []limiter.Limit{{Requests: 10, Period: time.Minute}}, `"api";q=10;w=60`,
			// T = 6s: after n calls the key is n·6s from a full burst.
			[]string{`"api";r=9;t=6`, `"api";r=8;t=12`}},
		{"window rounded up", []limiter.Limit{{Requests: 5, Period: 1500 * time.Millisecond}}, `"api";q=5;w=2`,
			[]string{`"api";r=4;t=1`}},
		{"burst", []limiter.Limit{{Requests: 60, Period: time.Minute, Burst: 3}}, `"api";q=60;w=60`,
			[]string{`"api";r=2;t=1`, `"api";r=1;t=2`}},
		{"two limits", []limiter.Limit{{Requests: 2, Period: time.Second}, {Requests: 100, Period: time.Hour}},
			`"api.0";q=2;w=1, "api.1";q=100;w=3600`,
			[]string{`"api.0";r=1;t=1, "api.1";r=99;t=36`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h hooks
			in := rl.StreamServerInterceptor(h.options((&rl.Policy{Name: "api", Limits: tc.limits, Store: memory(t)}).Compile()))
			for i, state := range tc.states {
				r := invoke(in, context.Background())
				r.allowed(t, tc.name)
				if r.ss.setCalls != 1 {
					t.Errorf("call %d: SetHeader called %d times, want once", i+1, r.ss.setCalls)
				}
				checkHeaders(t, tc.name, r.ss.hdr, map[string]string{"ratelimit-policy": tc.policy, "ratelimit": state})
			}
			if len(h.rejected)+len(h.storeFailed) != 0 {
				t.Errorf("hooks called for allowed calls: rejected %v, store failed %v", h.rejected, h.storeFailed)
			}
		})
	}
}

func TestOmitHeadersWhenAllowed(t *testing.T) {
	var h hooks
	p := (&rl.Policy{Name: "quiet", Limits: []limiter.Limit{{Requests: 1, Period: time.Minute}}, Store: memory(t), OmitHeadersWhenAllowed: true}).Compile()
	in := rl.StreamServerInterceptor(h.options(p))
	r := invoke(in, context.Background())
	r.allowed(t, "first call")
	if r.ss.setCalls != 0 {
		t.Errorf("allowed call: headers set %v", r.ss.hdr)
	}
	// A refusal still says when to come back.
	r = invoke(in, context.Background())
	r.refused(t, "second call", codes.ResourceExhausted)
	checkHeaders(t, "refused call", r.ss.hdr, map[string]string{
		"retry-after": "60", "ratelimit-policy": `"quiet";q=1;w=60`, "ratelimit": `"quiet";r=0;t=60`,
	})
}

func retryAndQuota(t *testing.T, st *status.Status) (*errdetails.RetryInfo, *errdetails.QuotaFailure) {
	t.Helper()
	var (
		ri *errdetails.RetryInfo
		qf *errdetails.QuotaFailure
	)
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.RetryInfo:
			ri = d
		case *errdetails.QuotaFailure:
			qf = d
		default:
			t.Errorf("unexpected detail %T %v", d, d)
		}
	}
	if ri == nil || qf == nil {
		t.Fatalf("details %v: want RetryInfo and QuotaFailure", st.Details())
	}
	return ri, qf
}

func TestRefusedCall(t *testing.T) {
	for _, tc := range []struct {
		name       string
		limits     []limiter.Limit
		allowed    int // calls allowed before the refusal
		message    string
		retryDelay time.Duration
		violations []*errdetails.QuotaFailure_Violation
		headers    map[string]string
	}{
		{
			name: "one limit", limits: []limiter.Limit{{Requests: 1, Period: time.Minute}}, allowed: 1,
			message: `edgegate: rate limit "api" exceeded; retry in 1m0s`, retryDelay: time.Minute,
			violations: []*errdetails.QuotaFailure_Violation{{Subject: "policy:api", Description: "1 calls per 1m0s, burst 1"}},
			headers:    map[string]string{"retry-after": "60", "ratelimit-policy": `"api";q=1;w=60`, "ratelimit": `"api";r=0;t=60`},
		},
		{
			// T = 1.5s: the wait is 1.5s, and retry-after rounds it up.
			name: "retry-after rounded up", limits: []limiter.Limit{{Requests: 2, Period: 3 * time.Second, Burst: 1}}, allowed: 1,
			message: `edgegate: rate limit "api" exceeded; retry in 1.5s`, retryDelay: 1500 * time.Millisecond,
			violations: []*errdetails.QuotaFailure_Violation{{Subject: "policy:api", Description: "2 calls per 3s, burst 1"}},
			headers:    map[string]string{"retry-after": "2", "ratelimit-policy": `"api";q=2;w=3`, "ratelimit": `"api";r=0;t=2`},
		},
		{
			// The per-second limit is spent, the per-minute one is not:
			// only the first is a violation.
			name: "two limits", limits: []limiter.Limit{{Requests: 2, Period: time.Second}, {Requests: 3, Period: time.Minute}}, allowed: 2,
			message: `edgegate: rate limit "api" exceeded; retry in 500ms`, retryDelay: 500 * time.Millisecond,
			violations: []*errdetails.QuotaFailure_Violation{{Subject: "policy:api.0", Description: "2 calls per 1s, burst 2"}},
			headers: map[string]string{
				"retry-after":      "1",
				"ratelimit-policy": `"api.0";q=2;w=1, "api.1";q=3;w=60`,
				"ratelimit":        `"api.0";r=0;t=1, "api.1";r=1;t=40`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h hooks
			in := rl.StreamServerInterceptor(h.options((&rl.Policy{Name: "api", Limits: tc.limits, Store: memory(t)}).Compile()))
			for i := range tc.allowed {
				invoke(in, context.Background()).allowed(t, "call "+string(rune('1'+i)))
			}
			r := invoke(in, withInfo(&callinfo.Info{Door: callinfo.DoorREST}))
			st := r.refused(t, "over the limit", codes.ResourceExhausted)
			if st.Message() != tc.message {
				t.Errorf("message %q, want %q", st.Message(), tc.message)
			}
			ri, qf := retryAndQuota(t, st)
			if got := ri.GetRetryDelay().AsDuration(); got != tc.retryDelay {
				t.Errorf("RetryInfo.retry_delay %v, want %v", got, tc.retryDelay)
			}
			if want := (&errdetails.QuotaFailure{Violations: tc.violations}); !proto.Equal(qf, want) {
				t.Errorf("QuotaFailure %v, want %v", qf, want)
			}
			if r.ss.setCalls != 1 {
				t.Errorf("SetHeader called %d times, want once", r.ss.setCalls)
			}
			checkHeaders(t, "refused", r.ss.hdr, tc.headers)
			if want := [][2]string{{"api", "rest"}}; !reflect.DeepEqual(h.rejected, want) {
				t.Errorf("Rejected calls %v, want %v", h.rejected, want)
			}
			if h.storeFailed != nil {
				t.Errorf("StoreFailed calls %v", h.storeFailed)
			}
		})
	}
}

func TestRejectedHookNamesTheDoor(t *testing.T) {
	var h hooks
	in := rl.StreamServerInterceptor(h.options((&rl.Policy{Name: "api", Limits: []limiter.Limit{{Requests: 1, Period: time.Hour}}, Store: memory(t)}).Compile()))
	invoke(in, context.Background()).allowed(t, "first call")
	invoke(in, context.Background()).refused(t, "no call record", codes.ResourceExhausted)
	invoke(in, withInfo(&callinfo.Info{Door: callinfo.DoorGRPCWeb})).refused(t, "gRPC-Web", codes.ResourceExhausted)
	// Without a call record the call is native gRPC.
	if want := [][2]string{{"api", "grpc"}, {"api", "grpc-web"}}; !reflect.DeepEqual(h.rejected, want) {
		t.Errorf("Rejected calls %v, want %v", h.rejected, want)
	}
}

func TestSeveralPolicies(t *testing.T) {
	store := memory(t)
	a := (&rl.Policy{Name: "a", Limits: []limiter.Limit{{Requests: 10, Period: time.Minute}}, Store: store}).Compile()
	quiet := (&rl.Policy{Name: "quiet", Limits: []limiter.Limit{{Requests: 10, Period: time.Minute}}, Store: store, OmitHeadersWhenAllowed: true}).Compile()
	b := (&rl.Policy{Name: "b", Limits: []limiter.Limit{{Requests: 1, Period: time.Minute}}, Store: store}).Compile()
	var h hooks
	in := rl.StreamServerInterceptor(h.options(a, quiet, b))

	r := invoke(in, context.Background())
	r.allowed(t, "first call")
	if r.ss.setCalls != 1 {
		t.Errorf("allowed: SetHeader called %d times, want once", r.ss.setCalls)
	}
	checkHeaders(t, "allowed", r.ss.hdr, map[string]string{
		"ratelimit-policy": `"a";q=10;w=60, "b";q=1;w=60`,
		"ratelimit":        `"a";r=9;t=6, "b";r=0;t=60`,
	})

	// b refuses the second call: only b's headers, only b rejected.
	r = invoke(in, context.Background())
	st := r.refused(t, "second call", codes.ResourceExhausted)
	if !strings.Contains(st.Message(), `rate limit "b" exceeded`) {
		t.Errorf("message %q names another policy", st.Message())
	}
	checkHeaders(t, "refused", r.ss.hdr, map[string]string{
		"retry-after": "60", "ratelimit-policy": `"b";q=1;w=60`, "ratelimit": `"b";r=0;t=60`,
	})
	if want := [][2]string{{"b", "grpc"}}; !reflect.DeepEqual(h.rejected, want) {
		t.Errorf("Rejected calls %v, want %v", h.rejected, want)
	}
}

func TestStoreFailure(t *testing.T) {
	broken := &fakeStore{err: errors.New("redis: connection refused")}
	limits := []limiter.Limit{{Requests: 1, Period: time.Minute}}
	t.Run("fail open", func(t *testing.T) {
		var h hooks
		in := rl.StreamServerInterceptor(h.options((&rl.Policy{Name: "api", Limits: limits, Store: broken}).Compile()))
		for i := range 3 {
			r := invoke(in, context.Background())
			r.allowed(t, "fail open")
			if r.ss.setCalls != 0 {
				t.Errorf("call %d: headers %v from a store that could not decide", i+1, r.ss.hdr)
			}
		}
		if want := []string{"api", "api", "api"}; !reflect.DeepEqual(h.storeFailed, want) {
			t.Errorf("StoreFailed calls %v, want %v", h.storeFailed, want)
		}
		if h.rejected != nil {
			t.Errorf("Rejected calls %v", h.rejected)
		}
	})
	t.Run("fail closed", func(t *testing.T) {
		var h hooks
		in := rl.StreamServerInterceptor(h.options((&rl.Policy{Name: "api", Limits: limits, Store: broken, FailClosed: true}).Compile()))
		r := invoke(in, context.Background())
		st := r.refused(t, "fail closed", codes.Unavailable)
		if want := `edgegate: rate limit "api" cannot be checked now; try again`; st.Message() != want {
			t.Errorf("message %q, want %q", st.Message(), want)
		}
		if strings.Contains(st.Message(), "redis") {
			t.Errorf("message %q shows the store's error", st.Message())
		}
		if want := []string{"api"}; !reflect.DeepEqual(h.storeFailed, want) {
			t.Errorf("StoreFailed calls %v, want %v", h.storeFailed, want)
		}
		if h.rejected != nil {
			t.Errorf("Rejected calls %v", h.rejected)
		}
	})
	t.Run("fail open beside a working policy", func(t *testing.T) {
		var h hooks
		failing := (&rl.Policy{Name: "shared", Limits: limits, Store: broken}).Compile()
		local := (&rl.Policy{Name: "local", Limits: limits, Store: memory(t)}).Compile()
		in := rl.StreamServerInterceptor(h.options(failing, local))
		r := invoke(in, context.Background())
		r.allowed(t, "first call")
		checkHeaders(t, "allowed", r.ss.hdr, map[string]string{"ratelimit-policy": `"local";q=1;w=60`, "ratelimit": `"local";r=0;t=60`})
		invoke(in, context.Background()).refused(t, "second call", codes.ResourceExhausted)
		if want := []string{"shared", "shared"}; !reflect.DeepEqual(h.storeFailed, want) {
			t.Errorf("StoreFailed calls %v, want %v", h.storeFailed, want)
		}
		if want := [][2]string{{"local", "grpc"}}; !reflect.DeepEqual(h.rejected, want) {
			t.Errorf("Rejected calls %v, want %v", h.rejected, want)
		}
	})
}

func TestStoreFailureIsLoggedAtMostOncePerSecond(t *testing.T) {
	var buf bytes.Buffer
	o := rl.Options{
		Policies: func(context.Context) []*rl.Policy {
			return []*rl.Policy{(&rl.Policy{Name: "api", Limits: []limiter.Limit{{Requests: 1, Period: time.Minute}}, Store: &fakeStore{err: errors.New("i/o timeout")}, FailClosed: true}).Compile()}
		},
		Log: slog.New(slog.NewJSONHandler(&buf, nil)),
	}
	in := rl.StreamServerInterceptor(o)
	for range 5 {
		invoke(in, context.Background()).refused(t, "fail closed", codes.Unavailable)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines for a burst of failures, want 1:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "WARN", "msg": "rate limit store cannot decide", "policy": "api", "fail_closed": true, "error": "i/o timeout"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("log %s = %v, want %v (line %s)", k, rec[k], v, lines[0])
		}
	}
}

func TestStoreKey(t *testing.T) {
	f := &fakeStore{}
	limits := []limiter.Limit{{Requests: 5, Period: time.Second}}
	p := (&rl.Policy{Name: "api", Scope: "s1", Key: []rl.KeyFunc{rl.APIKey("x-api-key")}, Limits: limits, Store: f}).Compile()
	in := rl.StreamServerInterceptor(rl.Options{Policies: func(context.Context) []*rl.Policy { return []*rl.Policy{p} }})
	invoke(in, metadata.NewIncomingContext(context.Background(), metadata.Pairs("x-api-key", "sk-live-123"))).allowed(t, "call")
	if len(f.keys) != 1 {
		t.Fatalf("store asked %d times, want once", len(f.keys))
	}
	if !regexp.MustCompile(`^api:s1:[0-9a-f]{32}$`).MatchString(f.keys[0]) {
		t.Errorf("store key %q, want api:s1:<hash>", f.keys[0])
	}
	if strings.Contains(f.keys[0], "sk-live-123") {
		t.Errorf("store key %q holds the API key", f.keys[0])
	}
	if !reflect.DeepEqual(f.limits[0], limits) {
		t.Errorf("store got limits %v, want %v", f.limits[0], limits)
	}
}

// caller is the context of one call.
type caller func() context.Context

func md(kv ...string) caller {
	return func() context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
	}
}

// who is what a call record says of the caller.
type who struct{ Principal, ClientIP, Peer, Method string }

func info(w who) caller {
	return func() context.Context {
		return withInfo(&callinfo.Info{Door: callinfo.DoorGRPC, Principal: w.Principal, ClientIP: w.ClientIP, Peer: w.Peer, Method: w.Method})
	}
}

func TestKeyParts(t *testing.T) {
	// recorded is a call whose record holds kv as its incoming metadata,
	// while its context holds other metadata: the record's copy wins.
	recorded := func(kv ...string) caller {
		return func() context.Context {
			i := &callinfo.Info{Door: callinfo.DoorREST}
			i.SetIncoming(metadata.Pairs(kv...))
			return callinfo.NewContext(md("x-tenant", "from-the-context")(), i)
		}
	}
	for _, tc := range []struct {
		name string
		key  rl.KeyFunc
		// a and b are counted apart; same is counted with a.
		a, b, same caller
	}{
		{"principal", rl.Principal, info(who{Principal: "alice"}), info(who{Principal: "bob"}), info(who{Principal: "alice", ClientIP: "192.0.2.9"})},
		{"no principal is anonymous", rl.Principal, info(who{}), info(who{Principal: "bob"}), context.Background},
		{"client IP over the peer", rl.ClientIP,
			info(who{ClientIP: "203.0.113.7", Peer: "10.0.0.1:1111"}),
			info(who{ClientIP: "203.0.113.8", Peer: "10.0.0.1:1111"}),
			info(who{ClientIP: "203.0.113.7", Peer: "10.0.0.2:2222"})},
		{"peer's IP, port aside", rl.ClientIP, info(who{Peer: "10.0.0.1:1111"}), info(who{Peer: "10.0.0.2:1111"}), info(who{Peer: "10.0.0.1:2222"})},
		{"method", rl.Method, info(who{Method: "/shop.v1.Orders/Get"}), info(who{Method: "/shop.v1.Orders/List"}), info(who{Method: "/shop.v1.Orders/Get", Principal: "x"})},
		{"header", rl.Header("X-Tenant"), md("x-tenant", "t1"), md("x-tenant", "t2"), md("x-tenant", "t1", "x-other", "y")},
		{"header from the call record", rl.Header("x-tenant"), md("x-tenant", "t1"), md("x-tenant", "t2"), recorded("x-tenant", "t1")},
		{"API key", rl.APIKey("x-api-key"), md("x-api-key", "key-one"), md("x-api-key", "key-two"), md("x-api-key", "key-one")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h hooks
			p := (&rl.Policy{Name: "api", Key: []rl.KeyFunc{tc.key}, Limits: []limiter.Limit{{Requests: 1, Period: time.Hour}}, Store: memory(t)}).Compile()
			in := rl.StreamServerInterceptor(h.options(p))
			invoke(in, tc.a()).allowed(t, "a")
			invoke(in, tc.b()).allowed(t, "b, counted apart from a")
			invoke(in, tc.same()).refused(t, "counted with a", codes.ResourceExhausted)
		})
	}
}

func TestKeyOfSeveralParts(t *testing.T) {
	p := (&rl.Policy{Name: "api", Key: []rl.KeyFunc{rl.Principal, rl.Method}, Limits: []limiter.Limit{{Requests: 1, Period: time.Hour}}, Store: memory(t)}).Compile()
	var h hooks
	in := rl.StreamServerInterceptor(h.options(p))
	call := info(who{Principal: "alice", Method: "/a.B/C"})
	invoke(in, call()).allowed(t, "alice C")
	invoke(in, info(who{Principal: "alice", Method: "/a.B/D"})()).allowed(t, "alice D")
	invoke(in, info(who{Principal: "bob", Method: "/a.B/C"})()).allowed(t, "bob C")
	// The parts are kept apart: "ab"+"c" is not "a"+"bc".
	invoke(in, info(who{Principal: "alice/a.B", Method: "/C"})()).allowed(t, "parts shifted")
	invoke(in, call()).refused(t, "alice C again", codes.ResourceExhausted)
}

func TestScopeSeparatesCounts(t *testing.T) {
	store := memory(t)
	limits := []limiter.Limit{{Requests: 1, Period: time.Hour}}
	policy := func(name, scope string) grpc.StreamServerInterceptor {
		p := (&rl.Policy{Name: name, Scope: scope, Limits: limits, Store: store}).Compile()
		return rl.StreamServerInterceptor(rl.Options{Policies: func(context.Context) []*rl.Policy { return []*rl.Policy{p} }})
	}
	invoke(policy("api", "s1"), context.Background()).allowed(t, "api s1")
	invoke(policy("api", "s2"), context.Background()).allowed(t, "api s2 (after a reload)")
	invoke(policy("other", "s1"), context.Background()).allowed(t, "other s1")
	invoke(policy("api", "s1"), context.Background()).refused(t, "api s1 again", codes.ResourceExhausted)
}

func TestKeyFuncs(t *testing.T) {
	ctx := context.Background()
	sum := sha256.Sum256([]byte("key-one"))
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"principal", rl.Principal(ctx, nil, &callinfo.Info{Principal: "alice"}), "alice"},
		{"principal, none", rl.Principal(ctx, nil, &callinfo.Info{}), "anonymous"},
		{"principal, no record", rl.Principal(ctx, nil, nil), "anonymous"},
		{"client IP", rl.ClientIP(ctx, nil, &callinfo.Info{ClientIP: "203.0.113.7", Peer: "10.0.0.1:1"}), "203.0.113.7"},
		{"client IP from the peer", rl.ClientIP(ctx, nil, &callinfo.Info{Peer: "[2001:db8::1]:443"}), "2001:db8::1"},
		{"client IP from a peer without port", rl.ClientIP(ctx, nil, &callinfo.Info{Peer: "10.0.0.3"}), "10.0.0.3"},
		{"client IP, no record", rl.ClientIP(ctx, nil, nil), ""},
		{"method", rl.Method(ctx, nil, &callinfo.Info{Method: "/a.B/C"}), "/a.B/C"},
		{"method, no record", rl.Method(ctx, nil, nil), ""},
		{"header, first value, any case", rl.Header("X-Tenant")(ctx, metadata.Pairs("x-tenant", "t1", "x-tenant", "t2"), nil), "t1"},
		{"header, absent", rl.Header("x-tenant")(ctx, metadata.MD{}, nil), ""},
		{"API key, hashed", rl.APIKey("X-Api-Key")(ctx, metadata.Pairs("x-api-key", "key-one"), nil), hex.EncodeToString(sum[:16])},
		{"API key, absent", rl.APIKey("x-api-key")(ctx, metadata.MD{}, nil), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}
