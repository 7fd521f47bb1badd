// Command edgegate is the gateway binary:
//
//	edgegate serve [-c FILE]     serve (the embedded default config without -c)
//	edgegate validate [-c FILE]  check a config file (the embedded default without -c) and print
//	                             where it listens; exit 1 with its errors
//	edgegate routes [-c FILE]    print the route table
//	edgegate version             print the version
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/edgegate/edgegate/config"
	"github.com/edgegate/edgegate/gateway"
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
	authint "github.com/edgegate/edgegate/interceptors/auth"
	"github.com/edgegate/edgegate/internal/logline"
	"github.com/edgegate/edgegate/internal/logout"
	"github.com/edgegate/edgegate/internal/version"
	"github.com/edgegate/edgegate/router"
	"github.com/edgegate/edgegate/schema"
	"github.com/edgegate/edgegate/tlsconf"
)

const usage = `edgegate — a gRPC-first API edge gateway

Usage:
  edgegate serve [-c FILE]     serve (the embedded default config without -c)
  edgegate validate [-c FILE]  check a config file (the embedded default without -c): exit 0 and where it
                               listens when valid, 1 with its errors
  edgegate routes [-c FILE]    print the route table and the REST routes
  edgegate openapi [-c FILE]   print the OpenAPI 3.1 document of the REST routes (JSON)
  edgegate hash-key [KEY]      print the SHA-256 to put in an api_key provider (KEY from stdin when absent)
  edgegate certs dev DIR       write a local CA, a localhost server certificate and a client certificate
  edgegate version             print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(rest, stderr)
	case "validate":
		return validate(rest, stdout, stderr)
	case "routes":
		return routes(rest, stdout, stderr)
	case "openapi":
		return openAPI(rest, stdout, stderr)
	case "hash-key":
		return hashKey(rest, os.Stdin, stdout, stderr)
	case "certs":
		return certs(rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version.String())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "edgegate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// loadFlags parses -c and loads the file it names, or the embedded default
// when it is absent.
func loadFlags(name string, args []string, stderr io.Writer) (*configv1.Config, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "config file (YAML); the embedded default when empty")
	if err := fs.Parse(args); err != nil {
		return nil, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edgegate %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, 2
	}
	var (
		cfg *configv1.Config
		err error
	)
	if *file == "" {
		cfg, err = config.LoadDefault()
	} else {
		cfg, err = config.LoadFile(*file)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, 1
	}
	return cfg, 0
}

func hashKey(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var key string
	switch len(args) {
	case 0:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr, "edgegate hash-key:", err)
			return 1
		}
		key = strings.TrimRight(line, "\r\n")
	case 1:
		key = args[0]
	default:
		fmt.Fprintln(stderr, "usage: edgegate hash-key [KEY]")
		return 2
	}
	if key == "" {
		fmt.Fprintln(stderr, "edgegate hash-key: empty key")
		return 1
	}
	fmt.Fprintln(stdout, authint.HashKey(key))
	return 0
}

func certs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("certs dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	force := fs.Bool("force", false, "overwrite existing files")
	hosts := fs.String("hosts", "localhost,127.0.0.1,::1", "names and IPs of the server certificate")
	if len(args) == 0 || args[0] != "dev" {
		fmt.Fprintln(stderr, "usage: edgegate certs dev [-force] [-hosts h1,h2] DIR")
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: edgegate certs dev [-force] [-hosts h1,h2] DIR")
		return 2
	}
	files, err := tlsconf.WriteDevCerts(fs.Arg(0), strings.Split(*hosts, ","), *force)
	if err != nil {
		fmt.Fprintln(stderr, "edgegate certs dev:", err)
		return 1
	}
	fmt.Fprintf(stdout, `wrote:
  CA:     %s (key %s)
  server: %s (key %s)
  client: %s (key %s)

Serve TLS and mutual TLS with, in the config:
  listeners:
    - address: 127.0.0.1:8443
      tls:
        certificates: [{cert_file: %s, key_file: %s}]
        client_auth: CLIENT_AUTH_REQUIRE
        client_ca_file: %s
Then: curl --cacert %s --cert %s --key %s https://localhost:8443/v1/shelves/1/books/1
`, files.CACert, files.CAKey, files.ServerCert, files.ServerKey, files.ClientCert, files.ClientKey,
		files.ServerCert, files.ServerKey, files.CACert, files.CACert, files.ClientCert, files.ClientKey)
	return 0
}

// configFile returns the -c value of args (already parsed once).
func configFile(args []string) string {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("c", "", "")
	_ = fs.Parse(args)
	return *file
}

func validate(args []string, stdout, stderr io.Writer) int {
	cfg, code := loadFlags("validate", args, stderr)
	if cfg == nil {
		return code
	}
	// The same build as serve, in a dry run: certificates, keys, JWKS
	// files, CEL rules, cluster targets, every policy.
	if err := gateway.Check(cfg, gateway.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
		file := configFile(args)
		if file == "" {
			file = config.DefaultPath
		}
		fmt.Fprintln(stderr, config.PlaceFile(file, err))
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d listeners, %d clusters, %d routes\n", len(cfg.GetListeners()), len(cfg.GetClusters()), len(cfg.GetRoutes()))
	writeAddresses(stdout, cfg)
	return 0
}

// writeAddresses prints where cfg (defaults applied) listens, a line per
// listener then the admin server's:
//
//	listener NAME ADDRESS plaintext|tls PROTOCOL...
//	admin ADDRESS|off
//
// scripts/run.sh (make run) reads the first listener and the admin address
// from it.
func writeAddresses(w io.Writer, cfg *configv1.Config) {
	for _, l := range cfg.GetListeners() {
		sec := "plaintext"
		if l.GetTls() != nil {
			sec = "tls"
		}
		protos := make([]string, len(l.GetProtocols()))
		for i, p := range l.GetProtocols() {
			protos[i] = strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(p.String(), "PROTOCOL_")), "_", "-")
		}
		fmt.Fprintf(w, "listener %s %s %s %s\n", l.GetName(), l.GetAddress(), sec, strings.Join(protos, " "))
	}
	if a := cfg.GetAdmin(); a.GetDisable() {
		fmt.Fprintln(w, "admin off")
	} else {
		fmt.Fprintln(w, "admin", a.GetAddress())
	}
}

// describe loads the config of args and builds its route table and
// schema (reading the clusters with server reflection); errors and the
// reflection warnings go to stderr.
func describe(name string, args []string, stderr io.Writer) (*configv1.Config, *router.Table, *schema.Registry, int) {
	cfg, code := loadFlags(name, args, stderr)
	if cfg == nil {
		return nil, nil, nil, code
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t, reg, err := gateway.Describe(cfg, gateway.WithLogger(log))
	if err != nil {
		file := configFile(args)
		if file == "" {
			file = config.DefaultPath
		}
		fmt.Fprintln(stderr, config.PlaceFile(file, err))
		return nil, nil, nil, 1
	}
	return cfg, t, reg, 0
}

func openAPI(args []string, stdout, stderr io.Writer) int {
	cfg, _, reg, code := describe("openapi", args, stderr)
	if cfg == nil {
		return code
	}
	doc, err := gateway.OpenAPI(cfg, reg)
	if err != nil {
		fmt.Fprintln(stderr, "edgegate openapi:", err)
		return 1
	}
	if _, err := stdout.Write(append(doc, '\n')); err != nil {
		return 1
	}
	return 0
}

func routes(args []string, stdout, stderr io.Writer) int {
	cfg, t, reg, code := describe("routes", args, stderr)
	if cfg == nil {
		return code
	}
	if err := t.Write(stdout); err != nil {
		return 1
	}
	var hr []router.HTTPRoute
	for _, b := range reg.Bindings() {
		hr = append(hr, router.HTTPRoute{Verb: b.Verb, Path: b.Path, FullMethod: b.Method.Full, Source: schema.BindingSource(b)})
	}
	fmt.Fprintln(stdout)
	if err := t.WriteHTTP(stdout, hr); err != nil {
		return 1
	}
	if len(cfg.GetComposites()) > 0 {
		fmt.Fprintln(stdout)
		if err := t.WriteLocal(stdout); err != nil {
			return 1
		}
	}
	return 0
}

// logLevel is logging.level as a slog level (unset: info).
func logLevel(lc *configv1.Logging) slog.Level {
	return map[configv1.Logging_Level]slog.Level{
		configv1.Logging_LEVEL_DEBUG: slog.LevelDebug,
		configv1.Logging_LEVEL_INFO:  slog.LevelInfo,
		configv1.Logging_LEVEL_WARN:  slog.LevelWarn,
		configv1.Logging_LEVEL_ERROR: slog.LevelError,
	}[lc.GetLevel()]
}

func newLogger(lc *configv1.Logging, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(lc)}
	if lc.GetFormat() == configv1.Logging_FORMAT_TEXT {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// accessLogFlushInterval is logging.access_log_flush_interval: how long
// access log lines may wait to be written together. Default 1s.
func accessLogFlushInterval(lc *configv1.Logging) time.Duration {
	if d := lc.GetAccessLogFlushInterval(); d != nil {
		return d.AsDuration()
	}
	return time.Second
}

func serve(args []string, stderr io.Writer) int {
	restore := lowerGCPercent(loadGCPercent)
	cfg, code := loadFlags("serve", args, stderr)
	restore()
	if cfg == nil {
		return code
	}
	file := configFile(args)
	out := logout.New(stderr, accessLogFlushInterval(cfg.GetLogging()))
	defer func() { _ = out.Flush() }()
	log := newLogger(cfg.GetLogging(), out.Direct())
	slog.SetDefault(log)
	var accessLog *slog.Logger
	if !cfg.GetLogging().GetDisableAccessLog() {
		// The access log's lines are slog's, written by logline (a line
		// per call: see internal/logline).
		lc := cfg.GetLogging()
		accessLog = slog.New(logline.New(out, lc.GetFormat() != configv1.Logging_FORMAT_TEXT, logLevel(lc)))
	}
	var gw *gateway.Gateway
	reload := func() error {
		if file == "" {
			return errors.New("the embedded default config cannot be reloaded: start with -c FILE")
		}
		next, err := config.LoadFile(file)
		if err != nil {
			gw.Metrics().Reloaded(false)
			log.Error("config reload failed; the configuration in force stays", slog.String("error", err.Error()))
			return err
		}
		return config.PlaceFile(file, gw.Reload(next))
	}
	gw, err := gateway.New(cfg, gateway.WithLogger(log), gateway.WithAccessLog(accessLog), gateway.WithReloader(reload), gateway.WithRuntime())
	if err != nil {
		log.Error("config", slog.String("error", err.Error()))
		return 1
	}
	if err := gw.Listen(); err != nil {
		log.Error("listen", slog.String("error", err.Error()))
		gw.Stop()
		return 1
	}
	// The first SIGTERM or SIGINT stops the gateway (see stopOnSignal); a
	// second one, during the drain period, ends that period early.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the config")
				_ = reload()
			case <-ctx.Done():
				return
			}
		}
	}()
	if file != "" && !cfg.GetReload().GetDisableWatch() {
		settle := cfg.GetReload().GetSettlePeriod().AsDuration()
		if err := config.Watch(ctx, file, config.WatchOptions{
			Settle: settle,
			Changed: func() {
				log.Info("config file changed: reloading", slog.String("file", file))
				_ = reload()
			},
			Settling: func() {
				log.Info("config file written in place: loading it once it settles", slog.String("file", file), slog.Duration("settle_period", settle))
			},
		}); err != nil {
			log.Warn("cannot watch the config file; SIGHUP and POST /reload still reload", slog.String("error", err.Error()))
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- gw.Serve() }()
	log.Info("edgegate ready", slog.String("version", version.String()))
	var sig os.Signal
	select {
	case err := <-errc:
		if err != nil {
			log.Error("serve", slog.String("error", err.Error()))
			return 1
		}
		return 0
	case sig = <-sigs:
	}
	cancel()
	exit := stopOnSignal(gw, cfg, log, sig, sigs, errc)
	log.Info("stopped")
	return exit
}

// loadGCPercent is the collector's target while serve loads the config.
// The load makes most of the start's garbage (protovalidate builds a CEL
// environment of every protobuf file in the binary, dropped after the
// load); collected often, what the load keeps packs into fewer pages:
// 2 MiB less idle RSS (heap spans the start's garbage left part-used) for
// some 10 more collections, 30–50 ms of CPU, at start (go run ./bench/rss
// and GODEBUG=gctrace=1, 2026-12-01).
const loadGCPercent = 10

// lowerGCPercent sets the collector's target to p unless it is lower
// already (or off), and returns the function that sets it back.
func lowerGCPercent(p int) (restore func()) {
	old := debug.SetGCPercent(p)
	if old < p { // lower already, or off (negative)
		debug.SetGCPercent(old)
	}
	return func() { debug.SetGCPercent(old) }
}

// stopOnSignal stops gw after the signal sig. On SIGTERM, the drain
// period first: /readyz answers 503 and the health service NOT_SERVING
// while the listeners still serve, for shutdown_drain_period or until the
// next signal on sigs, whichever comes first; SIGINT (an interactive
// stop) skips it. Then the listeners close and the calls in flight get
// shutdown_grace_period to finish; a further signal ends the process at
// once. It returns the exit code: 0, or 1 when serving failed.
func stopOnSignal(gw *gateway.Gateway, cfg *configv1.Config, log *slog.Logger, sig os.Signal, sigs chan os.Signal, errc chan error) int {
	grace := cfg.GetShutdownGracePeriod().AsDuration()
	drain := cfg.GetShutdownDrainPeriod().AsDuration()
	if sig != syscall.SIGTERM {
		drain = 0
	}
	gw.Drain()
	log.Info("draining", slog.String("signal", sig.String()), slog.Duration("drain_period", drain), slog.Duration("grace_period", grace))
	code := 0
	served := false // Serve has returned (its error taken from errc)
	if drain > 0 {
		t := time.NewTimer(drain)
		select {
		case <-t.C:
		case s := <-sigs:
			log.Info("drain period ended early", slog.String("signal", s.String()))
		case err := <-errc:
			served = true
			if err != nil {
				log.Error("serve", slog.String("error", err.Error()))
				code = 1
			}
		}
		t.Stop()
	}
	signal.Stop(sigs)
	log.Info("closing the listeners", slog.Duration("grace_period", grace))
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := gw.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", slog.String("error", err.Error()))
	}
	if !served {
		if err := <-errc; err != nil {
			log.Error("serve", slog.String("error", err.Error()))
		}
	}
	return code
}
