// Package test holds edgegate's end-to-end tests and their harness: real
// upstream gRPC servers, the real gateway (in-process, or the built binary),
// real clients, all on loopback, all stopped when the test ends.
//
// The harness is this file, in sections:
//   - waiting: Patience, Eventually; tests wait on events, not sleeps;
//   - upstreams: StartEcho (an echo Upstream that records every call as it
//     starts and ends: NextCall, WaitStarted, WaitReceived, WaitCount, and
//     StartedUntil with WithMarker for negative checks), StartServer,
//     FreeAddr;
//   - the gateway in process (StartGateway) and its configs (EchoConfig,
//     doorsConfig), the gateway binary (StartBinary);
//   - logs: LogBuffer, with WaitFor, WaitContains and AccessLine;
//   - clients: Dial, Ctx, statusProto, and one client per front door
//     (door: grpcDoor, webDoor, restDoor);
//   - HTTP and gRPC-Web by hand (doHTTP, postWeb, webFrame, wantStatusJSON);
//   - admin and metrics (adminGet, scrape, counter), certificates (NewCA,
//     CA.Issue, WriteFile).
//
// A test file keeps only what is its own.
package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/examples/echo"
	"github.com/edgegate/edgegate/gateway"
	testingv1 "github.com/edgegate/edgegate/gen/edgegate/testing/v1"
	"github.com/edgegate/edgegate/interceptors/accesslog"
)

// Waiting: a test waits on the event it needs (a call started at the
// upstream, a log line written, an answer changed), never on a sleep. The
// waits of the harness fail the test after Patience.

// Patience is how long a wait of the harness waits for its event before it
// fails the test: long enough for a loaded CI machine under -race, short
// enough that a missing event fails the test in seconds.
const Patience = 10 * time.Second

// Eventually calls cond at once, then again after pauses growing from 5ms
// to 100ms, until it returns nil; if it has not within d, it fails the
// test (Fatal: call it from the test's goroutine) with cond's last error.
// It is for a state only a query can see (what an RPC answers, what an
// endpoint reports); where the harness has an event for it
// (Upstream.WaitStarted, LogBuffer.WaitFor, …), wait on that.
func Eventually(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	pause := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		next := time.NewTimer(pause)
		select {
		case <-next.C:
		case <-deadline.C:
			next.Stop()
			t.Fatalf("not within %v: %v", d, err)
			return
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// changes is a broadcast of "something changed" for waiters: the writer
// calls notify at every change, a waiter waits on next(). Both with the
// owner's mutex held; the zero value is ready.
type changes struct{ ch chan struct{} }

func (c *changes) next() <-chan struct{} {
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *changes) notify() {
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// awaitChange calls check with mu held, at once and after every change of
// c, until it returns true (awaitChange returns true) or Patience has passed
// (false).
func awaitChange(mu *sync.Mutex, c *changes, check func() bool) bool {
	deadline := time.NewTimer(Patience)
	defer deadline.Stop()
	for {
		mu.Lock()
		ok, next := check(), c.next()
		mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-next:
		case <-deadline.C:
			return false
		}
	}
}

// Upstreams: real gRPC servers on loopback. StartEcho runs the echo
// service (examples/echo) and records every call as it starts and as it
// ends; StartServer runs any services.
//
// A negative check ("the gateway did not forward it", "it did not retry")
// never waits a while for nothing to happen: after the call under test has
// been answered, the test sends a marked call (WithMarker) through the
// gateway and StartedUntil waits for the upstream to end that one, then
// says what else the upstream started meanwhile. Whatever the gateway does
// for a call (forward it, retry it) it does before it answers it, so before
// the client sends the marker; and the gateway's calls to one endpoint (the
// clusters of these checks have one) go over one HTTP/2 connection, which
// the upstream reads in order. So the upstream reads a forwarded or retried
// call before the marker, and starts it before it has run the marker to its
// end, which is what StartedUntil waits for.

// Call is what an upstream echo server saw of one call, as it started or
// as it ended.
type Call struct {
	Method   string
	MD       metadata.MD
	CtxErr   error     // the call's context error then: at the end, non-nil when the call was cancelled or its deadline passed
	Deadline time.Time // zero when the call had none
}

// Upstream is a real gRPC server on loopback running the echo service. Its
// methods are safe for concurrent use.
type Upstream struct {
	Addr   string
	Server *grpc.Server
	Health *health.Server

	calls chan Call // ended calls, for NextCall

	mu       sync.Mutex
	changed  changes
	started  []Call // every call started, in order
	ended    []Call // every call ended, in order
	received int64  // request messages read, over all calls
}

// MarkerKey is the request metadata key of a marked call; its value names
// the marker.
const MarkerKey = "x-test-marker"

// WithMarker returns ctx with outgoing metadata that marks the call as
// marker (see StartedUntil). Through the HTTP doors, send the header
// MarkerKey: marker instead (forwarded when the door's
// forward_request_headers list it: doorsConfig's gRPC-Web list does).
func WithMarker(ctx context.Context, marker string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, MarkerKey, marker)
}

// StartEcho starts an echo upstream whose responses carry name; it is
// stopped when the test ends.
func StartEcho(t testing.TB, name string, opts ...grpc.ServerOption) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{Addr: ln.Addr().String(), calls: make(chan Call, 1024)}
	record := func(ctx context.Context, m string) Call {
		md, _ := metadata.FromIncomingContext(ctx)
		dl, _ := ctx.Deadline()
		return Call{Method: m, MD: md, CtxErr: ctx.Err(), Deadline: dl}
	}
	u.Server = grpc.NewServer(opts...)
	testingv1.RegisterEchoServiceServer(u.Server, &echo.Server{
		Name: name,
		Start: func(ctx context.Context, m string) {
			c := record(ctx, m)
			u.mu.Lock()
			defer u.mu.Unlock()
			u.started = append(u.started, c)
			u.changed.notify()
		},
		Receive: func(context.Context, string, *testingv1.EchoRequest) {
			u.mu.Lock()
			defer u.mu.Unlock()
			u.received++
			u.changed.notify()
		},
		Observe: func(ctx context.Context, m string) {
			c := record(ctx, m)
			u.mu.Lock()
			u.ended = append(u.ended, c)
			u.changed.notify()
			u.mu.Unlock()
			select {
			case u.calls <- c:
			default:
			}
		},
	})
	u.Health = health.NewServer()
	healthpb.RegisterHealthServer(u.Server, u.Health)
	go func() { _ = u.Server.Serve(ln) }()
	t.Cleanup(u.Server.Stop)
	return u
}

// Count is how many calls the upstream has ended.
func (u *Upstream) Count() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return int64(len(u.ended))
}

// Started is how many calls have started at the upstream (ended or not).
func (u *Upstream) Started() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return int64(len(u.started))
}

// NextCall waits up to Patience for the next call the upstream ended (in
// the order they ended, from the first or the last DropCalls) and takes
// it.
func (u *Upstream) NextCall(t testing.TB) Call {
	t.Helper()
	select {
	case c := <-u.calls:
		return c
	case <-time.After(Patience):
		t.Fatalf("upstream saw no call within %v", Patience)
		return Call{}
	}
}

// DropCalls forgets the ended calls NextCall has not taken yet, so that
// its next answer is a call that ends from now on.
func (u *Upstream) DropCalls() {
	for {
		select {
		case <-u.calls:
		default:
			return
		}
	}
}

// WaitStarted waits until at least n calls (counted from the upstream's
// start, as Started) have started at the upstream: for a test that needs
// calls in flight, held at the upstream (by a delay) and so in flight at
// the gateway too.
func (u *Upstream) WaitStarted(t testing.TB, n int64) {
	t.Helper()
	if !awaitChange(&u.mu, &u.changed, func() bool { return int64(len(u.started)) >= n }) {
		t.Fatalf("%d calls started at the upstream within %v, want %d", u.Started(), Patience, n)
	}
}

// WaitReceived waits until the upstream has read at least n request
// messages, over all its calls: a message it has read it acts on next (its
// delay, its fail_with).
func (u *Upstream) WaitReceived(t testing.TB, n int64) {
	t.Helper()
	if !awaitChange(&u.mu, &u.changed, func() bool { return u.received >= n }) {
		u.mu.Lock()
		got := u.received
		u.mu.Unlock()
		t.Fatalf("the upstream read %d request messages within %v, want %d", got, Patience, n)
	}
}

// WaitCount waits until at least n calls (as Count) have ended at the
// upstream.
func (u *Upstream) WaitCount(t testing.TB, n int64) {
	t.Helper()
	if !awaitChange(&u.mu, &u.changed, func() bool { return int64(len(u.ended)) >= n }) {
		t.Fatalf("upstream count %d within %v, want %d", u.Count(), Patience, n)
	}
}

// StartedUntil waits until the upstream has ended the call marked marker
// (WithMarker) and returns the other calls that started at it from the
// since-th (a value of Started taken before the call under test) until
// then. Sent after the call under test was answered, the marker bounds a
// negative check: see the section's comment for why any forward or retry
// of that call is among the calls returned.
func (u *Upstream) StartedUntil(t testing.TB, since int64, marker string) []Call {
	t.Helper()
	isMarker := func(c Call) bool { v := c.MD.Get(MarkerKey); return len(v) == 1 && v[0] == marker }
	var others []Call
	ok := awaitChange(&u.mu, &u.changed, func() bool {
		if !slices.ContainsFunc(u.ended, isMarker) {
			return false
		}
		for _, c := range u.started[since:] {
			if !isMarker(c) {
				others = append(others, c)
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("the upstream did not end the call marked %q within %v", marker, Patience)
	}
	return others
}

// StartServer starts a gRPC server on loopback with the services register
// adds; it is stopped when the test ends.
func StartServer(t testing.TB, register func(*grpc.Server)) string {
	t.Helper()
	return StartServerOpts(t, register)
}

// StartServerOpts is StartServer with server options.
func StartServerOpts(t testing.TB, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	register(s)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

// FreeAddr returns a loopback address that nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// The gateway in process: gateway.New on loopback, its logs kept, and the
// configs most tests start from.

// Gateway is an in-process edgegate serving on loopback.
type Gateway struct {
	*gateway.Gateway
	Addr string
	Logs *LogBuffer
}

// StartGateway loads yaml (whose listener addresses should be
// 127.0.0.1:0), starts the gateway and stops it when the test ends. Its log
// lines (access log included) are kept in Logs.
func StartGateway(t testing.TB, yaml string, opts ...gateway.Option) *Gateway {
	t.Helper()
	if !strings.Contains(yaml, "\nadmin:") {
		yaml += "\nadmin: {address: 127.0.0.1:0}\n"
	}
	cfg, err := config.Load("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := gateway.New(cfg, append([]gateway.Option{gateway.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := gw.Serve(); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		gw.Stop()
		<-done
	})
	return &Gateway{Gateway: gw, Addr: gw.Addrs()[0].String(), Logs: logs}
}

// gatewayInterceptors adds stream interceptors at the inner end of the
// gateway's chain.
func gatewayInterceptors(stream ...grpc.StreamServerInterceptor) gateway.Option {
	return gateway.WithInterceptors(nil, stream)
}

// EchoConfig is a gateway config with one listener on a free loopback port
// and one cluster "echo" at addr, routed for the echo service.
func EchoConfig(addr string) string {
	return fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
clusters:
  - name: echo
    endpoints: [%q]
routes:
  - name: echo
    match: {service: edgegate.testing.v1.EchoService}
    cluster: echo
`, addr)
}

// doorsConfig exposes the echo upstream on every door, with the REST and
// gRPC-Web header allowlists the cases use.
func doorsConfig(addr string) string {
	return EchoConfig(addr) + `
http:
  rest:
    forward_request_headers: [x-custom]
    expose_response_headers: [echo-x-custom, echo-x-request-id]
  grpc_web:
    forward_request_headers: [x-custom, x-test-marker]
`
}

// echoClient starts an echo upstream ("up") and a gateway routing the echo
// service to it, and returns a grpc-go client of the gateway.
func echoClient(t *testing.T) (testingv1.EchoServiceClient, *Upstream, *Gateway) {
	t.Helper()
	up := StartEcho(t, "up")
	gw := StartGateway(t, EchoConfig(up.Addr))
	return testingv1.NewEchoServiceClient(Dial(t, gw.Addr)), up, gw
}

// allDoors starts an echo upstream and a gateway and returns a client per
// door.
func allDoors(t *testing.T) ([]door, *Upstream, *Gateway) {
	up := StartEcho(t, "up")
	gw := StartGateway(t, doorsConfig(up.Addr))
	base := "http://" + gw.Addr
	return []door{
		grpcDoor{testingv1.NewEchoServiceClient(Dial(t, gw.Addr))},
		webDoor{base: base},
		restDoor{base: base},
	}, up, gw
}

// The gateway binary: bin/edgegate (and the pinned grpcurl) built once per
// run, started on a config file, its log lines kept.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds bin/edgegate and the pinned grpcurl once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "edgegate-test-bin")
		if buildErr != nil {
			return
		}
		for _, args := range [][]string{
			{"build", "-o", filepath.Join(binDir, "edgegate"), "github.com/edgegate/edgegate/cmd/edgegate"},
			{"build", "-C", "../tools", "-o", filepath.Join(binDir, "grpcurl"), "github.com/fullstorydev/grpcurl/cmd/grpcurl"},
		} {
			cmd := exec.Command("go", args...)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Proc is a running edgegate binary.
type Proc struct {
	Cmd       *exec.Cmd
	Addr      string
	AdminAddr string
	File      string     // the config file it serves, for a test to rewrite
	logs      *LogBuffer // its log lines (stderr)
	done      chan error // its exit, once
}

// StartBinary runs `edgegate serve -c FILE` with yaml as FILE and waits
// until it listens.
func StartBinary(t *testing.T, yaml string) *Proc {
	t.Helper()
	dir := binaries(t)
	file := filepath.Join(t.TempDir(), "edgegate.yaml")
	if !strings.Contains(yaml, "\nadmin:") {
		yaml += "\nadmin: {address: 127.0.0.1:0}\n"
	}
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "edgegate"), "serve", "-c", file)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Cmd: cmd, File: file, logs: &LogBuffer{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	admin := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			_, _ = p.logs.Write([]byte(line + "\n"))
			var rec struct {
				Msg     string `json:"msg"`
				Address string `json:"address"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil {
				target := map[string]chan string{"listening": addr, "admin listening": admin}[rec.Msg]
				if target != nil {
					select {
					case target <- rec.Address:
					default:
					}
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	for _, into := range []struct {
		dst *string
		ch  chan string
	}{{&p.Addr, addr}, {&p.AdminAddr, admin}} {
		select {
		case *into.dst = <-into.ch:
		case err := <-p.done:
			t.Fatalf("edgegate exited: %v\n%s", err, p.logs.String())
		case <-time.After(20 * time.Second):
			t.Fatalf("edgegate did not listen within 20s:\n%s", p.logs.String())
		}
	}
	return p
}

// Wait waits up to d for the process to exit and returns its exit code.
func (p *Proc) Wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		if err == nil {
			return 0
		}
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return ee.ExitCode()
		}
		t.Fatal(err)
	case <-time.After(d):
		t.Fatalf("edgegate still running after %v:\n%s", d, p.logs.String())
	}
	return -1
}

// Logs: what the gateway (in process or binary) writes, kept for the
// test to read, and waited on as it is written.

// LogBuffer is a concurrency-safe log sink; the zero value is ready.
type LogBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	changed changes
}

var _ io.Writer = (*LogBuffer)(nil)

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changed.notify()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// WaitFor waits until cond is true of everything written so far (checked
// at once and after every write) and returns what was written; after
// Patience it fails the test, saying that the log has no what.
func (l *LogBuffer) WaitFor(t testing.TB, what string, cond func(logs string) bool) string {
	t.Helper()
	var logs string
	if !awaitChange(&l.mu, &l.changed, func() bool { logs = l.b.String(); return cond(logs) }) {
		t.Fatalf("no %s in the log within %v:\n%s", what, Patience, logs)
	}
	return logs
}

// WaitContains waits until the log contains needle.
func (l *LogBuffer) WaitContains(t testing.TB, needle string) {
	t.Helper()
	l.WaitFor(t, fmt.Sprintf("%q", needle), func(logs string) bool { return strings.Contains(logs, needle) })
}

// AccessLine waits for an access log line (msg "call") containing needle
// and returns the first. The HTTP doors write a call's line after they
// have answered it, so a client can have the answer before the line.
func (l *LogBuffer) AccessLine(t testing.TB, needle string) string {
	t.Helper()
	find := func(logs string) string {
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, needle) && strings.Contains(line, `"msg":"`+accesslog.Message+`"`) {
				return line
			}
		}
		return ""
	}
	return find(l.WaitFor(t, fmt.Sprintf("access log line with %q", needle), func(logs string) bool { return find(logs) != "" }))
}

// Clients: native gRPC connections and contexts, all closed or cancelled
// when the test ends.

// Dial returns a grpc-go client connection to addr, closed when the test
// ends.
func Dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Ctx returns a context that ends after d or when the test ends.
func Ctx(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// statusProto is a google.rpc.Status with details, for fail_with.
func statusProto(t *testing.T, code codes.Code, msg string, details []proto.Message) *spb.Status {
	t.Helper()
	st := &spb.Status{Code: int32(code), Message: msg}
	for _, d := range details {
		a, err := anypb.New(d)
		if err != nil {
			t.Fatal(err)
		}
		st.Details = append(st.Details, a)
	}
	return st
}

// Doors: one client per front door (native gRPC with grpc-go, gRPC-Web
// with connect-go, REST with net/http), behind one interface, so that a
// case is written once and run through the three.

// result is what a client of any door got from one call.
type result struct {
	resps  []*testingv1.EchoResponse
	header map[string]string // response headers (and, for gRPC, header metadata), lower-case keys
	st     *status.Status    // OK for success
	http   int               // HTTP status; 0 for native gRPC
}

// door is a front door as a client uses it. md is request metadata
// (headers); timeout, when positive, is the call's deadline.
type door interface {
	name() string
	unary(t *testing.T, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) result
	stream(t *testing.T, req *testingv1.EchoRequest, md map[string]string) result
}

// grpcDoor is grpc-go against the native gRPC door.
type grpcDoor struct{ c testingv1.EchoServiceClient }

func (grpcDoor) name() string { return "grpc" }

func outCtx(t *testing.T, md map[string]string, timeout time.Duration) context.Context {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx := Ctx(t, timeout)
	for k, v := range md {
		ctx = metadata.AppendToOutgoingContext(ctx, k, v)
	}
	return ctx
}

func flatten(md metadata.MD) map[string]string {
	out := map[string]string{}
	for k, v := range md {
		out[k] = strings.Join(v, ",")
	}
	return out
}

func (d grpcDoor) unary(t *testing.T, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) result {
	var hdr metadata.MD
	resp, err := d.c.Unary(outCtx(t, md, timeout), req, grpc.Header(&hdr))
	r := result{header: flatten(hdr), st: status.Convert(err)}
	if err == nil {
		r.resps = []*testingv1.EchoResponse{resp}
	}
	return r
}

func (d grpcDoor) stream(t *testing.T, req *testingv1.EchoRequest, md map[string]string) result {
	st, err := d.c.ServerStream(outCtx(t, md, 0), req)
	if err != nil {
		return result{st: status.Convert(err)}
	}
	var r result
	for {
		resp, err := st.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.st = status.Convert(err)
			}
			break
		}
		r.resps = append(r.resps, resp)
	}
	hdr, _ := st.Header()
	r.header = flatten(hdr)
	if r.st == nil {
		r.st = status.New(codes.OK, "")
	}
	return r
}

// webDoor is connect-go's independent gRPC-Web client.
type webDoor struct {
	base   string
	client *http.Client // nil: http.DefaultClient
}

func (webDoor) name() string { return "grpc-web" }

func connectStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return status.New(codes.Unknown, err.Error())
	}
	sp := &spb.Status{Code: int32(ce.Code()), Message: ce.Message()}
	for _, d := range ce.Details() {
		m, err := d.Value()
		if err != nil {
			continue
		}
		if a, err := anypb.New(m); err == nil {
			sp.Details = append(sp.Details, a)
		}
	}
	return status.FromProto(sp)
}

func httpFlatten(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[strings.ToLower(k)] = strings.Join(v, ",")
	}
	return out
}

func (d webDoor) ctx(t *testing.T, timeout time.Duration) context.Context {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return Ctx(t, timeout)
}

func (d webDoor) unary(t *testing.T, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) result {
	c := connect.NewClient[testingv1.EchoRequest, testingv1.EchoResponse](d.httpClient(), d.base+"/edgegate.testing.v1.EchoService/Unary", connect.WithGRPCWeb())
	cr := connect.NewRequest(req)
	for k, v := range md {
		cr.Header().Set(k, v)
	}
	resp, err := c.CallUnary(d.ctx(t, timeout), cr)
	r := result{st: connectStatus(err)}
	if err == nil {
		r.resps = []*testingv1.EchoResponse{resp.Msg}
		r.header = httpFlatten(resp.Header())
	} else {
		var ce *connect.Error
		if errors.As(err, &ce) {
			r.header = httpFlatten(ce.Meta())
		}
	}
	return r
}

func (d webDoor) stream(t *testing.T, req *testingv1.EchoRequest, md map[string]string) result {
	c := connect.NewClient[testingv1.EchoRequest, testingv1.EchoResponse](d.httpClient(), d.base+"/edgegate.testing.v1.EchoService/ServerStream", connect.WithGRPCWeb())
	cr := connect.NewRequest(req)
	for k, v := range md {
		cr.Header().Set(k, v)
	}
	st, err := c.CallServerStream(d.ctx(t, 0), cr)
	if err != nil {
		return result{st: connectStatus(err)}
	}
	defer func() { _ = st.Close() }()
	var r result
	for st.Receive() {
		r.resps = append(r.resps, proto.CloneOf(st.Msg()))
	}
	r.st = connectStatus(st.Err())
	r.header = httpFlatten(st.ResponseHeader())
	return r
}

// restDoor is plain net/http against the REST door.
type restDoor struct {
	base   string
	client *http.Client // nil: http.DefaultClient
}

func (restDoor) name() string { return "rest" }

var restJSON = protojson.MarshalOptions{}

func (d restDoor) do(t *testing.T, path string, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) (code int, header http.Header, body []byte) {
	t.Helper()
	body, err := restJSON.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hreq, err := http.NewRequestWithContext(Ctx(t, 10*time.Second), http.MethodPost, d.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	for k, v := range md {
		hreq.Header.Set(k, v)
	}
	if timeout > 0 {
		hreq.Header.Set("Grpc-Timeout", fmt.Sprintf("%dm", timeout.Milliseconds()))
	}
	resp, err := d.httpClient().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// restStatus decodes a google.rpc.Status JSON body.
func restStatus(t *testing.T, b []byte) *status.Status {
	t.Helper()
	var sp spb.Status
	if err := protojson.Unmarshal(b, &sp); err != nil {
		t.Fatalf("error body is not a google.rpc.Status: %v: %s", err, b)
	}
	return status.FromProto(&sp)
}

func (d restDoor) unary(t *testing.T, req *testingv1.EchoRequest, md map[string]string, timeout time.Duration) result {
	code, h, b := d.do(t, "/v1/echo:unary", req, md, timeout)
	r := result{header: httpFlatten(h), http: code}
	if code != http.StatusOK {
		r.st = restStatus(t, b)
		return r
	}
	var out testingv1.EchoResponse
	if err := protojson.Unmarshal(b, &out); err != nil {
		t.Fatalf("response: %v: %s", err, b)
	}
	r.resps, r.st = []*testingv1.EchoResponse{&out}, status.New(codes.OK, "")
	return r
}

func (d restDoor) stream(t *testing.T, req *testingv1.EchoRequest, md map[string]string) result {
	code, h, b := d.do(t, "/v1/echo:stream", req, md, 0)
	r := result{header: httpFlatten(h), http: code, st: status.New(codes.OK, "")}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var rec struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("stream record %q: %v", line, err)
		}
		if rec.Error != nil {
			r.st = restStatus(t, rec.Error)
			continue
		}
		var out testingv1.EchoResponse
		if err := protojson.Unmarshal(rec.Result, &out); err != nil {
			t.Fatalf("stream result %s: %v", rec.Result, err)
		}
		r.resps = append(r.resps, &out)
	}
	return r
}

func (d webDoor) httpClient() *http.Client { return orDefault(d.client) }

func (d restDoor) httpClient() *http.Client { return orDefault(d.client) }

func orDefault(c *http.Client) *http.Client {
	if c == nil {
		return http.DefaultClient
	}
	return c
}

// HTTP and gRPC-Web on the wire: plain requests and hand-made frames, for
// the cases a door client would not send.

type httpResult struct {
	code   int
	header http.Header
	body   []byte
}

func doHTTP(t *testing.T, client *http.Client, method, url, body string, hdr map[string]string) httpResult {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(Ctx(t, 10*time.Second), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{resp.StatusCode, resp.Header, b}
}

// wantStatusJSON checks an error answer: the HTTP status, JSON, and a
// google.rpc.Status body with code and a message containing msg.
func wantStatusJSON(t *testing.T, r httpResult, httpCode int, code codes.Code, msg string) {
	t.Helper()
	if r.code != httpCode {
		t.Errorf("HTTP %d, want %d: %s", r.code, httpCode, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q, want JSON", ct)
	}
	st := restStatus(t, r.body)
	if st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("status %v %q, want %v containing %q", st.Code(), st.Message(), code, msg)
	}
}

// h2cClient speaks HTTP/2 with prior knowledge over plain TCP (h2c).
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// webFrame frames msg as one gRPC-Web data frame.
func webFrame(t *testing.T, msg proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

// webAnswer is a parsed gRPC-Web response.
type webAnswer struct {
	code     int
	header   http.Header
	messages [][]byte
	trailers map[string]string
}

// grpcStatus is the call's grpc-status, from the trailer frame or, for a
// trailers-only answer, the headers.
func (a webAnswer) grpcStatus() string {
	if s, ok := a.trailers["grpc-status"]; ok {
		return s
	}
	return a.header.Get("Grpc-Status")
}

func (a webAnswer) grpcMessage() string {
	if s, ok := a.trailers["grpc-message"]; ok {
		return s
	}
	return a.header.Get("Grpc-Message")
}

func postWeb(t *testing.T, client *http.Client, url, contentType string, body []byte, hdr map[string]string) webAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(Ctx(t, 10*time.Second), "POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Grpc-Web", "1")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc-web-text") {
		dec, err := decodeChunks(raw)
		if err != nil {
			t.Fatalf("response is not base64: %v: %q", err, raw)
		}
		raw = dec
	}
	a := webAnswer{code: resp.StatusCode, header: resp.Header, trailers: map[string]string{}}
	for len(raw) >= 5 {
		flag, n := raw[0], binary.BigEndian.Uint32(raw[1:5])
		if int(n) > len(raw)-5 {
			t.Fatalf("response frame length %d past the end (%d bytes left)", n, len(raw)-5)
		}
		payload := raw[5 : 5+n]
		raw = raw[5+n:]
		if flag&0x80 != 0 {
			for _, line := range strings.Split(strings.TrimSpace(string(payload)), "\r\n") {
				if k, v, ok := strings.Cut(line, ":"); ok {
					a.trailers[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
				}
			}
			continue
		}
		a.messages = append(a.messages, payload)
	}
	if len(raw) != 0 {
		t.Fatalf("%d stray bytes after the last frame", len(raw))
	}
	return a
}

// decodeChunks decodes gRPC-Web text, which a server may send as several
// padded base64 chunks (one per flush).
func decodeChunks(b []byte) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		end := len(b)
		if i := bytes.IndexByte(b, '='); i >= 0 {
			end = i
			for end < len(b) && b[end] == '=' {
				end++
			}
		}
		dec, err := base64.StdEncoding.DecodeString(string(b[:end]))
		if err != nil {
			return nil, err
		}
		out, b = append(out, dec...), b[end:]
	}
	return out, nil
}

// Admin and metrics: the in-process gateway's admin server and its
// Prometheus metrics.

func adminGet(t *testing.T, gw *Gateway, path string) (int, string) {
	t.Helper()
	r := doHTTP(t, nil, "GET", "http://"+gw.AdminAddr().String()+path, "", nil)
	return r.code, string(r.body)
}

func scrape(t *testing.T, gw *Gateway) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := adminGet(t, gw, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// sample finds the metric of family name whose labels include want.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

func counter(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := sample(mfs, name, labels)
	if m == nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// Certificates: CAs and leaf certificates made by the test, and files to
// hold them.

// CA is a certificate authority a test makes.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

var serial int64 = 100

// NewCA makes a CA called cn.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Leaf describes a certificate to issue.
type Leaf struct {
	CN       string
	DNS      []string
	IPs      []string
	URIs     []string
	Client   bool      // a client certificate (else a server one)
	NotAfter time.Time // default a day from now
}

// Issue signs a leaf certificate; it returns the certificate and key PEM.
func (ca *CA) Issue(t testing.TB, l Leaf) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: l.CN},
		DNSNames:     l.DNS,
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if l.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, ip := range l.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range l.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// WriteFile writes data into dir/name and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// validate checks yaml as `edgegate validate` does: config.Load, then the
// gateway's build in a dry run, its errors placed in the file.
func validate(name, yaml string) error {
	cfg, err := config.Load(name, []byte(yaml))
	if err != nil {
		return err
	}
	return config.Place(name, []byte(yaml), gateway.Check(cfg, gateway.WithLogger(slog.New(slog.DiscardHandler))))
}
