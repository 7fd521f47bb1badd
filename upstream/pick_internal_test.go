package upstream

import (
	"path/filepath"
	"testing"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// TestPickRegistryIsLetGo: a cluster's entry in the pick balancer's
// registry goes when the cluster closes, and when New fails (on a cluster
// it could not dial, after dialling others), so that reloads do not pile
// up entries.
func TestPickRegistryIsLetGo(t *testing.T) {
	spec := func(name string) Spec {
		return Spec{Config: &configv1.Cluster{Name: name, Endpoints: []string{"127.0.0.1:1"}, MaxMessageBytes: 4 << 20}}
	}
	p, err := New([]Spec{spec("a"), spec("b")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range p.Clusters() {
		if lookup(c.pickID) != c.picks {
			t.Fatalf("cluster %q is not registered under its id %q", c.name, c.pickID)
		}
		ids = append(ids, c.pickID)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if lookup(id) != nil {
			t.Errorf("id %q still registered after Close", id)
		}
	}

	bad := spec("bad")
	bad.Config.Tls = &configv1.UpstreamTLS{CaFile: filepath.Join(t.TempDir(), "missing-ca.pem")}
	before := registered()
	if _, err := New([]Spec{spec("a"), bad}, nil); err == nil {
		t.Fatal("New of a cluster without its CA file succeeded")
	}
	if after := registered(); after != before {
		t.Errorf("%d ids registered after a failed New, %d before", after, before)
	}
}

func registered() int {
	n := 0
	registry.Range(func(any, any) bool { n++; return true })
	return n
}
