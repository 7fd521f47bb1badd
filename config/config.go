package config

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"buf.build/go/protovalidate"
	"buf.build/go/protoyaml"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// DefaultYAML is the embedded default configuration: the example shop API on
// the example backends of cmd/shopd.
//
//go:embed default.yaml
var DefaultYAML []byte

// DefaultPath is the name the embedded default configuration goes by in
// errors and logs.
const DefaultPath = "<embedded default>"

// Defaults of the fields whose zero value means "the default".
const (
	DefaultMaxConcurrentStreams = 100
	DefaultMaxHeaderListBytes   = 16 << 10
	DefaultMaxMessageBytes      = 4 << 20
	DefaultConnectionTimeout    = 10 * time.Second
	DefaultMaxPrematureResets   = 100
	DefaultWriteTimeout         = 30 * time.Second
	DefaultMaxControlFrames     = 1000
	DefaultMinPingInterval      = 30 * time.Second
	DefaultMaxConnectionIdle    = 15 * time.Minute
	DefaultKeepaliveTime        = 2 * time.Hour
	DefaultKeepaliveTimeout     = 20 * time.Second
	DefaultShutdownGracePeriod  = 15 * time.Second
	DefaultShutdownDrainPeriod  = 5 * time.Second
	DefaultCancelledLogPerSec   = 100
	DefaultSettlePeriod         = time.Second
	DefaultConnectTimeout       = 5 * time.Second
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultIdleTimeout          = 2 * time.Minute
	DefaultRequestBodyTimeout   = 30 * time.Second
	DefaultOpenAPIPath          = "/openapi.json"
	DefaultCORSMaxAge           = 10 * time.Minute
	DefaultAdminAddress         = "127.0.0.1:9901"
	DefaultServiceName          = "edgegate"
	DefaultRedisTimeout         = 50 * time.Millisecond
	DefaultRetryAttempts        = 3
	DefaultRetryBudgetRatio     = 0.1
	DefaultReflectionRefresh    = 5 * time.Minute
	DefaultReflectionTimeout    = 10 * time.Second
)

// Error is a configuration error at one place of one file. Line and Column
// are 1-based; they are 0 when the place is not known (the file as a whole).
type Error struct {
	File   string
	Line   int
	Column int
	// Path is the field path, for example "routes[3].cluster"; empty for
	// the file as a whole.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every error found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// LoadFile reads and checks the configuration file at path.
func LoadFile(path string) (*configv1.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Load(path, data)
}

// LoadDefault returns the embedded default configuration.
func LoadDefault() (*configv1.Config, error) {
	return Load(DefaultPath, DefaultYAML)
}

// validator adapts protovalidate to protoyaml, which then reports rule
// violations at their place in the file.
type validator struct{ v protovalidate.Validator }

func (v *validator) Validate(m proto.Message) error { return v.v.Validate(m) }

// lastValidator is the validator of the latest Load, held weakly. Building
// one registers every protobuf file of the binary with CEL (some 7 ms and
// 2 MB of heap that stays while it lives), and a serving gateway needs it
// again only on a reload: loads close together share one, and the
// collector frees it once no Load holds it.
var (
	validatorMu   sync.Mutex
	lastValidator weak.Pointer[validator]
)

// loadValidator returns the latest Load's validator while it lives, else a
// new one.
func loadValidator() (*validator, error) {
	validatorMu.Lock()
	defer validatorMu.Unlock()
	if v := lastValidator.Value(); v != nil {
		return v, nil
	}
	pv, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("protovalidate: %w", err)
	}
	v := &validator{pv}
	lastValidator = weak.Make(v)
	return v, nil
}

// Load parses and checks data, the contents of the file path. It returns the
// configuration with every default filled in, or an error: a *Error or an
// Errors, each naming path, line, column and field path.
func Load(path string, data []byte) (cfg *configv1.Config, err error) {
	defer func() {
		// The YAML parser must never take the gateway down; report what it
		// choked on instead.
		if p := recover(); p != nil {
			cfg, err = nil, &Error{File: path, Msg: fmt.Sprintf("cannot parse the file: %v", p)}
		}
	}()
	// protoyaml indexes the file's lines by the parser's line numbers: give
	// it one line ending.
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	v, err := loadValidator()
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	cfg = &configv1.Config{}
	opts := protoyaml.UnmarshalOptions{Path: path, Validator: v}
	if err := opts.Unmarshal(data, cfg); err != nil {
		doc, derr := parseDoc(data)
		if derr != nil {
			return nil, yamlError(path, derr)
		}
		return nil, fromProtoyaml(path, err, doc)
	}
	doc, err := parseDoc(data)
	if err != nil {
		return nil, yamlError(path, err)
	}
	if doc.root == nil || doc.root.Kind == 0 {
		// protoyaml does not validate a file with no YAML document in it.
		return nil, &Error{File: path, Msg: "the file holds no configuration: listeners: at least one is required"}
	}
	if errs := check(cfg); len(errs) > 0 {
		for _, e := range errs {
			e.File = path
			e.Line, e.Column = doc.position(e.Path)
		}
		slices.SortStableFunc(errs, func(a, b *Error) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Column - b.Column
		})
		if len(errs) == 1 {
			return nil, errs[0]
		}
		return nil, errs
	}
	applyDefaults(cfg)
	return cfg, nil
}

// fromProtoyaml turns protoyaml's error text into Errors, in file order.
// protoyaml writes one "PATH:LINE:COL [FIELD: ]MESSAGE" line per error, each
// followed by source snippet lines, which are dropped; an error of a field at
// a place already reported for it (a value that failed to parse, then failed
// its rule) is reported once. Other fields' errors at that place (a missing
// field's, at the start of a mapping whose first key is unknown) are kept.
func fromProtoyaml(path string, err error, d doc) error {
	head := regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(path) + `:(\d+):(\d+) (.*)$`)
	type place struct {
		line, col int
		path      string
	}
	var out Errors
	seen := map[place]bool{}
	for line := range strings.SplitSeq(err.Error(), "\n") {
		m := head.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		l, _ := strconv.Atoi(m[1])
		c, _ := strconv.Atoi(m[2])
		e := &Error{File: path, Line: l, Column: c, Msg: strings.TrimSpace(m[3])}
		if f, msg, ok := strings.Cut(e.Msg, ": "); ok && fieldPath.MatchString(f) {
			e.Path, e.Msg = f, msg
		} else {
			e.Path = d.pathAt(l, c)
		}
		if p := (place{l, c, e.Path}); !seen[p] {
			seen[p] = true
			out = append(out, e)
		}
	}
	out = suggestFields(out, d)
	// protoyaml reports every unknown key before the rule violations.
	slices.SortStableFunc(out, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	switch len(out) {
	case 0:
		return &Error{File: path, Msg: err.Error()}
	case 1:
		return out[0]
	default:
		return out
	}
}

// unknownField matches protoyaml's error of a key its message has no field
// for.
var unknownField = regexp.MustCompile(`^unknown field "([^"]*)"`)

// suggestFields adds to each unknown key's error the field of its message it
// most likely misspells (see didYouMean). When the file does not set that
// field, it drops the errors its absence causes, of the field's rules (a
// "required", a minimum length, a pattern the empty value fails) and the
// "required" of the oneof it is in: the misspelling is the one error to fix.
func suggestFields(errs Errors, d doc) Errors {
	absent := map[string]bool{} // fields: any rule
	oneofs := map[string]bool{} // oneofs: their "required"
	for _, e := range errs {
		m := unknownField.FindStringSubmatch(e.Msg)
		if m == nil || e.Path == "" {
			continue
		}
		parent := ""
		if i := strings.LastIndexByte(e.Path, '.'); i >= 0 {
			parent = e.Path[:i]
		}
		md, canon := messageAt(parent)
		if md == nil {
			continue
		}
		fd, name := didYouMean(md, m[1])
		if fd == nil {
			continue
		}
		e.Msg = fmt.Sprintf("unknown field %q: did you mean %q?", m[1], name)
		if canon != "" {
			canon += "."
		}
		if d.node(canon+string(fd.Name())) != nil {
			continue // set as well: its errors are its own
		}
		absent[canon+string(fd.Name())] = true
		if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
			oneofs[canon+string(o.Name())] = true
		}
	}
	return slices.DeleteFunc(errs, func(e *Error) bool {
		return absent[e.Path] || (oneofs[e.Path] && strings.HasSuffix(e.Msg, "(required)"))
	})
}

var methodPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/[A-Za-z_][A-Za-z0-9_]*$`)

var yamlLine = regexp.MustCompile(`line (\d+)(?::(\d+))?: `)

// yamlError places a YAML syntax error (or a structural one of parseDoc)
// at its line, and its column when known.
func yamlError(path string, err error) *Error {
	var pe *posError
	if errors.As(err, &pe) {
		return &Error{File: path, Line: pe.line, Column: pe.col, Msg: pe.msg}
	}
	e := &Error{File: path, Msg: err.Error()}
	if m := yamlLine.FindStringSubmatch(e.Msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Column = 1
		if m[2] != "" {
			e.Column, _ = strconv.Atoi(m[2])
		}
		e.Msg = strings.TrimPrefix(yamlLine.ReplaceAllString(e.Msg, ""), "yaml: ")
		e.Msg = "yaml: " + e.Msg
	}
	return e
}

var fieldPath = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\[\d+\])?(\.[a-z_][a-z0-9_]*(\[\d+\])?)*$`)

// check finds what the schema's field rules cannot, in the sections that
// are not a policy's: duplicate names, routes to unknown clusters,
// duplicate matches, malformed endpoints and addresses. Each policy checks
// its own sections when it compiles (the gateway's build, which
// `edgegate validate` runs too).
func check(cfg *configv1.Config) Errors {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
	}

	listenerNames := map[string]bool{}
	listenerAddrs := map[string]bool{}
	for i, l := range cfg.GetListeners() {
		p := fmt.Sprintf("listeners[%d]", i)
		if l.GetName() != "" {
			if listenerNames[l.GetName()] {
				add(p+".name", "duplicate listener name %q", l.GetName())
			}
			listenerNames[l.GetName()] = true
		}
		if err := checkHostPort(l.GetAddress(), true); err != nil {
			add(p+".address", "%v", err)
		} else if listenerAddrs[l.GetAddress()] && !strings.HasSuffix(l.GetAddress(), ":0") {
			add(p+".address", "duplicate listener address %q", l.GetAddress())
		}
		listenerAddrs[l.GetAddress()] = true
	}

	clusters := map[string]bool{}
	for i, c := range cfg.GetClusters() {
		p := fmt.Sprintf("clusters[%d]", i)
		if clusters[c.GetName()] {
			add(p+".name", "duplicate cluster name %q", c.GetName())
		}
		clusters[c.GetName()] = true
		eps := c.GetEndpoints()
		for j, ep := range eps {
			ep := ep
			if target, ok := strings.CutPrefix(ep, "dns:///"); ok {
				if len(eps) > 1 {
					add(fmt.Sprintf("%s.endpoints[%d]", p, j), "a dns:/// endpoint must be the cluster's only endpoint")
				}
				if err := checkHostPort(target, false); err != nil {
					add(fmt.Sprintf("%s.endpoints[%d]", p, j), "%v", err)
				}
				continue
			}
			if strings.Contains(ep, "://") {
				add(fmt.Sprintf("%s.endpoints[%d]", p, j), "endpoint %q: want host:port or dns:///host:port", ep)
				continue
			}
			if err := checkHostPort(ep, false); err != nil {
				add(fmt.Sprintf("%s.endpoints[%d]", p, j), "%v", err)
			}
		}
		if c.GetOutlierDetection() != nil && len(eps) == 1 && strings.HasPrefix(eps[0], "dns:///") {
			add(p+".outlier_detection", "needs static endpoints (host:port), not a dns:/// target")
		}
		if ka := c.GetKeepalive(); ka != nil && ka.GetTime() == nil {
			add(p+".keepalive.time", "required when keepalive is set")
		}
	}

	if r := cfg.GetRuntime(); r != nil && r.GetGcPercent() < 0 && r.MemoryLimitBytes == nil {
		add("runtime.gc_percent", "-1 (collector off) needs runtime.memory_limit_bytes")
	}
	if a := cfg.GetAdmin().GetAddress(); a != "" {
		if err := checkHostPort(a, true); err != nil {
			add("admin.address", "%v", err)
		} else if listenerAddrs[a] && !strings.HasSuffix(a, ":0") {
			add("admin.address", "address %q is a listener's too", a)
		}
	}
	if t := cfg.GetTracing(); t != nil {
		if err := checkHostPort(t.GetEndpoint(), false); err != nil {
			add("tracing.endpoint", "%v", err)
		}
	}
	if c := cfg.GetHttp().GetCors(); c != nil && c.GetAllowCredentials() {
		for i, o := range c.GetAllowedOrigins() {
			if o == "*" {
				add(fmt.Sprintf("http.cors.allowed_origins[%d]", i), `"*" cannot be used with allow_credentials`)
			}
		}
	}
	for i, o := range cfg.GetHttp().GetCors().GetAllowedOrigins() {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			add(fmt.Sprintf("http.cors.allowed_origins[%d]", i), "origin %q: want \"*\" or scheme://host[:port]", o)
		}
	}

	if r := cfg.GetRedis(); r != nil {
		checkRedis(r, add)
	}
	for i, c := range cfg.GetClusters() {
		rp := c.GetRetry()
		if rp == nil {
			continue
		}
		if n := rp.GetMaxAttempts(); n == 1 {
			add(fmt.Sprintf("clusters[%d].retry.max_attempts", i), "must be 2 to 5 (or 0 for the default, 3)")
		}
		for j, m := range rp.GetMethods() {
			if !methodPattern.MatchString(strings.TrimPrefix(m, "/")) {
				add(fmt.Sprintf("clusters[%d].retry.methods[%d]", i, j), "%q: want pkg.Service/Method", m)
			}
		}
	}

	checkCIDRs := func(path string, list []string) {
		for j, c := range list {
			if _, err := ParsePrefix(c); err != nil {
				add(fmt.Sprintf("%s[%d]", path, j), "%v", err)
			}
		}
	}
	checkCIDRs("trusted_proxies", cfg.GetTrustedProxies())
	for i, l := range cfg.GetListeners() {
		t := l.GetTls()
		if t == nil {
			continue
		}
		p := fmt.Sprintf("listeners[%d].tls", i)
		ca := t.GetClientCaFile() != ""
		switch t.GetClientAuth() {
		case configv1.ClientAuth_CLIENT_AUTH_REQUIRE:
			if !ca {
				add(p+".client_ca_file", "required with CLIENT_AUTH_REQUIRE")
			}
		case configv1.ClientAuth_CLIENT_AUTH_UNSPECIFIED, configv1.ClientAuth_CLIENT_AUTH_NONE:
			if ca {
				add(p+".client_ca_file", "set, but client_auth asks for no client certificate")
			}
		}
		if t.GetCrlFile() != "" && !ca {
			add(p+".crl_file", "needs client_ca_file")
		}
	}
	for i, c := range cfg.GetClusters() {
		if t := c.GetTls(); t != nil && (t.GetCertFile() == "") != (t.GetKeyFile() == "") {
			add(fmt.Sprintf("clusters[%d].tls", i), "cert_file and key_file go together")
		}
	}

	routeNames := map[string]bool{}
	matches := map[string]int{}
	for i, r := range cfg.GetRoutes() {
		p := fmt.Sprintf("routes[%d]", i)
		if r.GetName() != "" {
			if routeNames[r.GetName()] {
				add(p+".name", "duplicate route name %q", r.GetName())
			}
			routeNames[r.GetName()] = true
		}
		if !clusters[r.GetCluster()] {
			add(p+".cluster", "unknown cluster %q", r.GetCluster())
		}
		key, field := matchKey(r.GetMatch())
		if prev, dup := matches[key]; dup {
			add(p+".match."+field, "routes[%d] already matches %s", prev, strings.TrimSpace(strings.Replace(key, ":", " ", 1)))
		} else {
			matches[key] = i
		}
	}
	return errs
}

// ParsePrefix parses a CIDR ("10.0.0.0/8", "2001:db8::/32") or a single
// address (as a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// matchKey is a route match as a unique key and the name of its field.
func matchKey(m *configv1.RouteMatch) (key, field string) {
	switch k := m.GetKind().(type) {
	case *configv1.RouteMatch_Method:
		return "method:" + strings.TrimPrefix(k.Method, "/"), "method"
	case *configv1.RouteMatch_Service:
		return "service:" + k.Service, "service"
	case *configv1.RouteMatch_Package:
		return "package:" + k.Package, "package"
	default:
		return "default:", "default"
	}
}

// checkRedis checks that r names exactly one kind of Redis (address,
// sentinel or cluster) and that every address is host:port.
func checkRedis(r *configv1.Redis, add func(path, format string, args ...any)) {
	var kinds []string
	if r.GetAddress() != "" {
		kinds = append(kinds, "address")
		if err := checkHostPort(r.GetAddress(), false); err != nil {
			add("redis.address", "%v", err)
		}
	}
	if s := r.GetSentinel(); s != nil {
		kinds = append(kinds, "sentinel")
		for i, a := range s.GetAddresses() {
			if err := checkHostPort(a, false); err != nil {
				add(fmt.Sprintf("redis.sentinel.addresses[%d]", i), "%v", err)
			}
		}
	}
	if c := r.GetCluster(); c != nil {
		kinds = append(kinds, "cluster")
		for i, a := range c.GetAddresses() {
			if err := checkHostPort(a, false); err != nil {
				add(fmt.Sprintf("redis.cluster.addresses[%d]", i), "%v", err)
			}
		}
		if r.GetDb() != 0 {
			add("redis.db", "a Redis Cluster has database 0 only")
		}
	}
	switch len(kinds) {
	case 0:
		add("redis", "one of address, sentinel or cluster is required")
	case 1:
	default:
		add("redis."+kinds[1], "only one of address, sentinel or cluster: %s is set too", kinds[0])
	}
	if t := r.GetTls(); t != nil && (t.GetCertFile() == "") != (t.GetKeyFile() == "") {
		add("redis.tls.cert_file", "cert_file and key_file go together")
	}
}

func checkHostPort(s string, listener bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("address %q: want host:port", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (!listener && n == 0) {
		return fmt.Errorf("address %q: bad port %q", s, port)
	}
	if host == "" && !listener {
		return fmt.Errorf("address %q: missing host", s)
	}
	return nil
}

func applyDefaults(cfg *configv1.Config) {
	for i, l := range cfg.GetListeners() {
		if l.GetName() == "" {
			l.Name = fmt.Sprintf("listener-%d", i)
		}
		if len(l.GetProtocols()) == 0 {
			l.Protocols = []configv1.Protocol{configv1.Protocol_PROTOCOL_GRPC, configv1.Protocol_PROTOCOL_GRPC_WEB, configv1.Protocol_PROTOCOL_REST}
		}
	}
	for i, r := range cfg.GetRoutes() {
		if r.GetName() == "" {
			r.Name = fmt.Sprintf("route-%d", i)
		}
	}
	for i, r := range cfg.GetHttpRoutes() {
		if r.GetName() == "" {
			r.Name = fmt.Sprintf("http-%d", i)
		}
	}
	if cfg.Limits == nil {
		cfg.Limits = &configv1.ServerLimits{}
	}
	lim := cfg.Limits
	setU32(&lim.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	setU32(&lim.MaxHeaderListBytes, DefaultMaxHeaderListBytes)
	setU32(&lim.MaxMessageBytes, DefaultMaxMessageBytes)
	setDur(&lim.ConnectionTimeout, DefaultConnectionTimeout)
	setU32(&lim.MaxHeaderBlockBytes, max(4*lim.GetMaxHeaderListBytes(), 64<<10))
	if lim.MaxPrematureResets == 0 {
		lim.MaxPrematureResets = DefaultMaxPrematureResets
	}
	if lim.WriteTimeout == nil { // 0s is no bound
		lim.WriteTimeout = durationpb.New(DefaultWriteTimeout)
	}
	if lim.MaxControlFrames == 0 {
		lim.MaxControlFrames = DefaultMaxControlFrames
	}
	if lim.Keepalive == nil {
		lim.Keepalive = &configv1.ServerKeepalive{}
	}
	ka := lim.Keepalive
	setDur(&ka.MinPingInterval, DefaultMinPingInterval)
	setDur(&ka.MaxConnectionIdle, DefaultMaxConnectionIdle)
	setDur(&ka.Time, DefaultKeepaliveTime)
	setDur(&ka.Timeout, DefaultKeepaliveTimeout)
	setDur(&cfg.ShutdownGracePeriod, DefaultShutdownGracePeriod)
	if cfg.ShutdownDrainPeriod == nil { // 0s is no drain period
		cfg.ShutdownDrainPeriod = durationpb.New(DefaultShutdownDrainPeriod)
	}
	for _, c := range cfg.GetClusters() {
		if c.LoadBalancing == configv1.LoadBalancing_LOAD_BALANCING_UNSPECIFIED {
			c.LoadBalancing = configv1.LoadBalancing_LOAD_BALANCING_ROUND_ROBIN
		}
		setU32(&c.MaxMessageBytes, lim.GetMaxMessageBytes())
		setDur(&c.ConnectTimeout, DefaultConnectTimeout)
		if c.Keepalive != nil {
			setDur(&c.Keepalive.Timeout, DefaultKeepaliveTimeout)
		}
		if od := c.OutlierDetection; od != nil {
			setU32(&od.ConsecutiveFailures, 5)
			setDur(&od.EjectionTime, 30*time.Second)
			setU32(&od.MaxEjectionPercent, 50)
		}
		if r := c.Reflection; r != nil {
			setDur(&r.RefreshInterval, DefaultReflectionRefresh)
			setDur(&r.Timeout, DefaultReflectionTimeout)
		}
		if r := c.Retry; r != nil {
			setU32(&r.MaxAttempts, DefaultRetryAttempts)
			if r.BudgetRatio == nil {
				r.BudgetRatio = proto.Float64(DefaultRetryBudgetRatio)
			}
		}
	}
	if cfg.Http == nil {
		cfg.Http = &configv1.HTTP{}
	}
	h := cfg.Http
	if h.Rest == nil {
		h.Rest = &configv1.REST{}
	}
	if h.GrpcWeb == nil {
		h.GrpcWeb = &configv1.GRPCWeb{}
	}
	setDur(&h.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&h.IdleTimeout, DefaultIdleTimeout)
	setDur(&h.RequestBodyTimeout, DefaultRequestBodyTimeout)
	setU32(&h.MaxBodyBytes, lim.GetMaxMessageBytes())
	setU32(&h.MaxInFlight, 1000)
	if h.OpenapiPath == "" {
		h.OpenapiPath = DefaultOpenAPIPath
	}
	if h.Cors != nil {
		setDur(&h.Cors.MaxAge, DefaultCORSMaxAge)
	}
	if h.Console != nil && h.Console.PathPrefix == "" {
		h.Console.PathPrefix = "/console/"
	}
	if r := cfg.Redis; r != nil {
		setDur(&r.Timeout, DefaultRedisTimeout)
	}
	for _, rl := range cfg.GetRateLimits() {
		if rl.Backend == configv1.RateLimitBackend_RATE_LIMIT_BACKEND_UNSPECIFIED {
			rl.Backend = configv1.RateLimitBackend_RATE_LIMIT_BACKEND_MEMORY
		}
		for _, l := range rl.GetLimits() {
			setU32(&l.Burst, l.GetRequests())
		}
	}
	for _, ap := range cfg.GetAuthProviders() {
		if j := ap.GetJwt(); j != nil && j.Header == "" {
			j.Header = "authorization"
		}
		if k := ap.GetApiKey(); k != nil && k.Header == "" {
			k.Header = "x-api-key"
		}
	}
	if cfg.ForwardedIdentity == nil {
		cfg.ForwardedIdentity = &configv1.ForwardedIdentity{}
	}
	if cfg.ForwardedIdentity.PrincipalKey == "" {
		cfg.ForwardedIdentity.PrincipalKey = "x-edgegate-principal"
	}
	if cfg.ForwardedIdentity.ClaimsKey == "" {
		cfg.ForwardedIdentity.ClaimsKey = "x-edgegate-claims"
	}
	for _, l := range cfg.GetListeners() {
		if t := l.GetTls(); t != nil {
			if t.MinVersion == configv1.TLSVersion_TLS_VERSION_UNSPECIFIED {
				t.MinVersion = configv1.TLSVersion_TLS_VERSION_1_2
			}
			if t.ClientAuth == configv1.ClientAuth_CLIENT_AUTH_UNSPECIFIED {
				t.ClientAuth = configv1.ClientAuth_CLIENT_AUTH_NONE
			}
		}
	}
	if cfg.Reload == nil {
		cfg.Reload = &configv1.Reload{}
	}
	if cfg.Reload.SettlePeriod == nil { // 0s loads at the first write
		cfg.Reload.SettlePeriod = durationpb.New(DefaultSettlePeriod)
	}
	if cfg.Admin == nil {
		cfg.Admin = &configv1.Admin{}
	}
	if cfg.Admin.Address == "" {
		cfg.Admin.Address = DefaultAdminAddress
	}
	if t := cfg.Tracing; t != nil {
		if t.SampleRatio == nil {
			t.SampleRatio = proto.Float64(1)
		}
		if t.ServiceName == "" {
			t.ServiceName = DefaultServiceName
		}
	}
	if cfg.Logging == nil {
		cfg.Logging = &configv1.Logging{}
	}
	setU32(&cfg.Logging.AccessLogCancelledPerSecond, DefaultCancelledLogPerSec)
	if cfg.Logging.AccessLogSampleRatio == nil {
		cfg.Logging.AccessLogSampleRatio = proto.Float64(1)
	}
	if cfg.Logging.Format == configv1.Logging_FORMAT_UNSPECIFIED {
		cfg.Logging.Format = configv1.Logging_FORMAT_JSON
	}
	if cfg.Logging.Level == configv1.Logging_LEVEL_UNSPECIFIED {
		cfg.Logging.Level = configv1.Logging_LEVEL_INFO
	}
}

func setU32(p *uint32, def uint32) {
	if *p == 0 {
		*p = def
	}
}

// setDur fills in def when *p is absent or zero: a zero duration means the
// default, as the schema says (a zero connection timeout would fail every
// handshake).
func setDur(p **durationpb.Duration, def time.Duration) {
	if *p == nil || (*p).AsDuration() == 0 {
		*p = durationpb.New(def)
	}
}

// Hash returns the SHA-256 (hex) of cfg's deterministic binary encoding:
// the same for the same effective configuration.
func Hash(cfg *configv1.Config) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Clone returns a deep copy of cfg.
func Clone(cfg *configv1.Config) *configv1.Config {
	return proto.CloneOf(cfg)
}

// IsConfigError reports whether err is (or wraps) a configuration error
// with a place in the file.
func IsConfigError(err error) bool {
	var e *Error
	var es Errors
	return errors.As(err, &e) || errors.As(err, &es)
}
