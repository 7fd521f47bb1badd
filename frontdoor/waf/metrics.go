package waf

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the WAF's collectors: requests by outcome, and matched
// rules by id and the outcome of their request. A nil *Metrics counts
// nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	rules    *prometheus.CounterVec
}

// NewMetrics returns the collectors, registered with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_waf_requests_total",
			Help: "Requests the web application firewall inspected, by outcome (clean, passed, blocked, detected, uninspected, too_large).",
		}, []string{"outcome"}),
		rules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegate_waf_rule_matches_total",
			Help: "Rules of the web application firewall that matched, by rule id and the outcome of their request.",
		}, []string{"rule", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.rules)
	}
	return m
}

func (m *Metrics) observe(outcome string, ids []int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(outcome).Inc()
	for _, id := range ids {
		m.rules.WithLabelValues(strconv.Itoa(id), outcome).Inc()
	}
}
