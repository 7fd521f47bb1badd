// Package waf is the gateway's web application firewall: Coraza v3 with
// the OWASP Core Rule Set v4 (corazawaf/coraza-coreruleset), in process,
// in front of the REST and gRPC-Web doors.
//
// A Firewall is one compiled WAF configuration (paranoia level, anomaly
// thresholds, mode, exclusions, extra directives). The Policy compiles the
// listeners' firewalls once and the routes' for every configuration,
// reusing a compiled rule set whose directives did not change (a Cache).
// Firewall.Serve inspects one request before its door serves it: the URI,
// the headers and the body (read whole by the HTTP handler); it answers a
// blocked request itself (403 google.rpc.Status JSON, or a gRPC-Web
// trailers-only PERMISSION_DENIED) and records the matched rules and the
// anomaly score in the call's record. Native gRPC is never inspected.
package waf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// Defaults of the WAF's settings.
const (
	DefaultParanoiaLevel     = 1
	DefaultInboundThreshold  = 5
	DefaultOutboundThreshold = 4
	DefaultMaxBodyBytes      = 128 << 10
)

// Firewall is one compiled WAF configuration. It is immutable and safe for
// concurrent use.
type Firewall struct {
	waf       coraza.WAF
	blocking  bool
	maxBody   int
	passLarge bool
	responses bool
	m         *Metrics
}

// Blocking reports whether the firewall refuses what its rules match
// (false: detection only).
func (f *Firewall) Blocking() bool { return f.blocking }

// Merge returns the WAF settings of a route under a listener: the
// listener's, with what the route sets over them and the route's
// exclusions added to the listener's. Either may be nil; the result is nil
// when both are, or when the one that decides turns the WAF off.
func Merge(listener, route *configv1.WAF) *configv1.WAF {
	switch {
	case route == nil:
		if listener.GetDisabled() {
			return nil
		}
		return listener
	case listener == nil || route.GetDisabled():
		if route.GetDisabled() {
			return nil
		}
		return route
	}
	out := proto.CloneOf(listener)
	if route.GetMode() != configv1.WAFMode_WAF_MODE_UNSPECIFIED {
		out.Mode = route.GetMode()
	}
	if route.GetBodyLimit() != configv1.WAFBodyLimit_WAF_BODY_LIMIT_UNSPECIFIED {
		out.BodyLimit = route.GetBodyLimit()
	}
	for _, set := range []struct{ from, to **uint32 }{
		{&route.ParanoiaLevel, &out.ParanoiaLevel},
		{&route.InboundAnomalyThreshold, &out.InboundAnomalyThreshold},
		{&route.OutboundAnomalyThreshold, &out.OutboundAnomalyThreshold},
		{&route.MaxBodyBytes, &out.MaxBodyBytes},
	} {
		if *set.from != nil {
			*set.to = *set.from
		}
	}
	if route.InspectResponses != nil {
		out.InspectResponses = route.InspectResponses
	}
	if route.DirectivesFile != nil {
		out.DirectivesFile = route.DirectivesFile
	}
	if route.SetupDirectivesFile != nil {
		out.SetupDirectivesFile = route.SetupDirectivesFile
	}
	out.RemoveRuleIds = append(out.RemoveRuleIds, route.GetRemoveRuleIds()...)
	out.RemoveRuleTags = append(out.RemoveRuleTags, route.GetRemoveRuleTags()...)
	out.ExcludeTargets = append(out.ExcludeTargets, route.GetExcludeTargets()...)
	return out
}

// Directives returns the SecLang directives of c (CRS included): the
// engine and body settings, the CRS setup with c's paranoia level and
// thresholds, the CRS rules, c's exclusions, then the content of c's
// directives file. The error is at path (the file cannot be read).
func Directives(c *configv1.WAF, path string) (string, error) {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	engine := "On"
	if c.GetMode() == configv1.WAFMode_WAF_MODE_DETECTION_ONLY {
		engine = "DetectionOnly"
	}
	maxBody := maxBodyOf(c)
	line("SecRuleEngine %s", engine)
	line("SecRequestBodyAccess On")
	// The handler applies the inspection limit itself, before the WAF.
	line("SecRequestBodyLimit %d", maxBody)
	line("SecRequestBodyInMemoryLimit %d", maxBody)
	line("SecRequestBodyLimitAction ProcessPartial")
	line("SecRequestBodyJsonDepthLimit 1024")
	line(`SecRule REQUEST_HEADERS:Content-Type "@rx ^application/(?:[a-z0-9.-]+\+)?json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"`)
	line(`SecRule REQUEST_HEADERS:Content-Type "@rx ^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"`)
	line(`SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%%{reqbody_error_msg}',severity:2"`)
	line(`SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation.'"`)
	if c.GetInspectResponses() {
		line("SecResponseBodyAccess On")
		line("SecResponseBodyMimeType application/json")
		line("SecResponseBodyLimit %d", maxBody)
		line("SecResponseBodyLimitAction ProcessPartial")
	} else {
		line("SecResponseBodyAccess Off")
	}
	line("Include @crs-setup.conf.example")
	pl := valueOr(c.ParanoiaLevel, DefaultParanoiaLevel)
	line(`SecAction "id:900000,phase:1,pass,nolog,t:none,setvar:tx.blocking_paranoia_level=%d"`, pl)
	line(`SecAction "id:900110,phase:1,pass,nolog,t:none,setvar:tx.inbound_anomaly_score_threshold=%d,setvar:tx.outbound_anomaly_score_threshold=%d"`,
		valueOr(c.InboundAnomalyThreshold, DefaultInboundThreshold), valueOr(c.OutboundAnomalyThreshold, DefaultOutboundThreshold))
	if err := include(&b, c.GetSetupDirectivesFile(), path+".setup_directives_file"); err != nil {
		return "", err
	}
	line("Include @owasp_crs/*.conf")
	for _, id := range c.GetRemoveRuleIds() {
		line("SecRuleRemoveById %d", id)
	}
	for _, tag := range c.GetRemoveRuleTags() {
		line("SecRuleRemoveByTag %s", strconv.Quote(tag))
	}
	for _, x := range c.GetExcludeTargets() {
		for _, id := range x.GetRuleIds() {
			line("SecRuleUpdateTargetById %d %s", id, strconv.Quote("!"+x.GetTarget()))
		}
	}
	if err := include(&b, c.GetDirectivesFile(), path+".directives_file"); err != nil {
		return "", err
	}
	return b.String(), nil
}

// include adds the content of file (none when "") to b; the error is at
// path.
func include(b *strings.Builder, file, path string) error {
	if file == "" {
		return nil
	}
	extra, err := os.ReadFile(file)
	if err != nil {
		return fieldErr(path, err)
	}
	b.WriteString("\n")
	b.Write(extra)
	b.WriteString("\n")
	return nil
}

func valueOr(p *uint32, def uint32) uint32 {
	if p == nil {
		return def
	}
	return *p
}

func maxBodyOf(c *configv1.WAF) int { return int(valueOr(c.MaxBodyBytes, DefaultMaxBodyBytes)) }

// Cache shares compiled rule sets between the firewalls whose directives
// are the same, across configurations: a reload that leaves a WAF's
// directives alone reuses its rule set. Safe for concurrent use.
type Cache struct {
	mu       sync.Mutex
	entries  map[string]*entry
	compiles int
}

type entry struct {
	waf  coraza.WAF
	refs int
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{entries: map[string]*entry{}} }

// Compiles is the number of rule sets the cache has compiled.
func (c *Cache) Compiles() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.compiles
}

// get returns the rule set of directives, compiled once while it is held;
// release gives it back.
func (c *Cache) get(directives string) (w coraza.WAF, release func(), err error) {
	sum := sha256.Sum256([]byte(directives))
	k := hex.EncodeToString(sum[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(directives))
		if err != nil {
			return nil, nil, err
		}
		c.compiles++
		e = &entry{waf: w}
		c.entries[k] = e
	}
	e.refs++
	var once sync.Once
	return e.waf, func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if e.refs--; e.refs == 0 {
				delete(c.entries, k)
			}
		})
	}, nil
}

// Compile builds the firewall of c (nil when c is nil or disabled), its
// rule set from cache; path is c's field path for errors (a directive's
// error is one, at the directives file when there is one). release gives
// the rule set back to the cache.
func Compile(c *configv1.WAF, path string, cache *Cache, m *Metrics) (f *Firewall, release func(), err error) {
	if c == nil || c.GetDisabled() {
		return nil, func() {}, nil
	}
	dirs, err := Directives(c, path)
	if err != nil {
		return nil, nil, err
	}
	w, release, err := cache.get(dirs)
	if err != nil {
		return nil, nil, directiveError(c, path, err)
	}
	return &Firewall{
		waf:       w,
		blocking:  c.GetMode() != configv1.WAFMode_WAF_MODE_DETECTION_ONLY,
		maxBody:   maxBodyOf(c),
		passLarge: c.GetBodyLimit() == configv1.WAFBodyLimit_WAF_BODY_LIMIT_PASS,
		responses: c.GetInspectResponses(),
		m:         m,
	}, release, nil
}

// directiveError is the error of a rule set that did not compile, at
// its place: in a directives file of c, at its line, when the file's
// directives alone do not compile; else at path.
func directiveError(c *configv1.WAF, path string, err error) error {
	for _, f := range []struct{ file, field string }{
		{c.GetSetupDirectivesFile(), ".setup_directives_file"},
		{c.GetDirectivesFile(), ".directives_file"},
	} {
		if f.file == "" {
			continue
		}
		content, rerr := os.ReadFile(f.file)
		if rerr != nil {
			continue
		}
		if line, ferr := failingLine(string(content)); ferr != nil {
			return fieldErr(path+f.field, fmt.Errorf("%s:%d: %w", f.file, line, ferr))
		}
	}
	return fieldErr(path, err)
}

// failingLine compiles content's directives alone, and, when they do not
// compile, returns the line of the first directive whose prefix of the
// file does not, with that error.
func failingLine(content string) (int, error) {
	compiles := func(d string) error {
		_, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(d))
		return err
	}
	err := compiles(content)
	if err == nil {
		return 0, nil
	}
	lines := strings.Split(content, "\n")
	for i := range lines {
		if strings.HasSuffix(strings.TrimSpace(lines[i]), "\\") {
			continue // a directive goes on
		}
		if perr := compiles(strings.Join(lines[:i+1], "\n")); perr != nil {
			return i + 1, perr
		}
	}
	return len(lines), err
}

// ruleIDs are the ids of the logging rules of matched, in order, once each.
func ruleIDs(ids []int) []int {
	slices.Sort(ids)
	return slices.Compact(ids)
}
