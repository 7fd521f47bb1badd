package gateway

import (
	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// compilePolicies compiles the per-configuration policies (rate limits).
func (g *Gateway) compilePolicies(cfg *configv1.Config) (any, error) {
	return nil, nil
}
