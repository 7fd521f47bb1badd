package httproute

import (
	"net/http/httptest"
	"testing"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

func TestMatcher(t *testing.T) {
	for _, c := range []struct {
		m      *configv1.HTTPRouteMatch
		method string
		target string
		host   string
		header map[string]string
		want   bool
	}{
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/legacy"}, target: "/legacy", want: true},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/legacy"}, target: "/legacy/a/b", want: true},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/legacy/"}, target: "/legacy", want: true},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/legacy"}, target: "/legacyx", want: false},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/"}, target: "/anything", want: true},
		{m: &configv1.HTTPRouteMatch{PathTemplate: "/hooks/{id}/events"}, target: "/hooks/7/events", want: true},
		{m: &configv1.HTTPRouteMatch{PathTemplate: "/hooks/{id}/events"}, target: "/hooks//events", want: false},
		{m: &configv1.HTTPRouteMatch{PathTemplate: "/hooks/{id}/events"}, target: "/hooks/7/events/x", want: false},
		{m: &configv1.HTTPRouteMatch{PathTemplate: "/hooks/{id}"}, target: "/hooks", want: false},
		{m: &configv1.HTTPRouteMatch{PathTemplate: "/files/{rest...}"}, target: "/files/a/b/c", want: true},
		{m: &configv1.HTTPRouteMatch{PathTemplate: "/files/**"}, target: "/files/a", want: true},
		{m: &configv1.HTTPRouteMatch{PathTemplate: "/files/**"}, target: "/other/a", want: false},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Methods: []string{"GET"}}, method: "POST", target: "/a", want: false},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Methods: []string{"GET", "POST"}}, method: "POST", target: "/a", want: true},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Hosts: []string{"api.example.com"}}, target: "/a", host: "API.example.com:8443", want: true},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Hosts: []string{"api.example.com"}}, target: "/a", host: "other.example.com", want: false},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Hosts: []string{"*.example.com"}}, target: "/a", host: "x.y.example.com", want: true},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Hosts: []string{"*.example.com"}}, target: "/a", host: "example.com", want: false},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Headers: map[string]string{"x-tenant": "blue"}}, target: "/a", header: map[string]string{"X-Tenant": "blue"}, want: true},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Headers: map[string]string{"x-tenant": "blue"}}, target: "/a", header: map[string]string{"X-Tenant": "red"}, want: false},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Headers: map[string]string{"x-tenant": "*"}}, target: "/a", header: map[string]string{"X-Tenant": "red"}, want: true},
		{m: &configv1.HTTPRouteMatch{PathPrefix: "/a", Headers: map[string]string{"x-tenant": "*"}}, target: "/a", want: false},
	} {
		m, err := newMatcher(c.m, "m")
		if err != nil {
			t.Fatal(err)
		}
		method := c.method
		if method == "" {
			method = "GET"
		}
		r := httptest.NewRequest(method, c.target, nil)
		if c.host != "" {
			r.Host = c.host
		}
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		if got := m.matches(r); got != c.want {
			t.Errorf("%v: %s %s (host %q, %v) = %v, want %v", c.m, method, c.target, c.host, c.header, got, c.want)
		}
	}
	for _, bad := range []*configv1.HTTPRouteMatch{
		{},
		{PathPrefix: "/a", PathTemplate: "/b"},
		{PathTemplate: "/a/**/b"},
		{PathTemplate: "/a/x{y}"},
	} {
		if _, err := newMatcher(bad, "m"); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
