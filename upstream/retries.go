package upstream

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/edgegate/edgegate/gen/edgegate/config/v1"
)

// retries is a cluster's retry policy and budget, as grpc-go's service
// config gave them before (retryPolicy and retryThrottling): calls of the
// policy's methods that fail with UNAVAILABLE before the upstream
// answered are made again, up to max_attempts, after a random backoff of
// up to 20 ms doubling to 0.5 s; a token bucket of 10, one token taken
// per such failure and budget_ratio given back per call that succeeds,
// stops retries while it is at half or less. A nil *retries retries
// nothing.
type retries struct {
	methods map[string]bool
	max     int

	mu     sync.Mutex
	tokens float64
	ratio  float64
}

const retryTokens = 10

func newRetries(rp *configv1.RetryPolicy, methods []string) *retries {
	if rp == nil || len(methods) == 0 {
		return nil
	}
	r := &retries{methods: map[string]bool{}, max: int(rp.GetMaxAttempts()), tokens: retryTokens, ratio: rp.GetBudgetRatio()}
	for _, m := range methods {
		r.methods[m] = true
	}
	return r
}

// applies reports whether calls of method are retried.
func (r *retries) applies(method string) bool { return r != nil && r.methods[method] }

// succeeded gives the budget back its share for a call that succeeded.
func (r *retries) succeeded() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.tokens = min(r.tokens+r.ratio, retryTokens)
	r.mu.Unlock()
}

// again decides on another attempt after attempt *n failed with err, and
// waits the backoff: false when err is not UNAVAILABLE, the budget is
// spent, the attempts are used up, or ctx ends first.
func (r *retries) again(ctx context.Context, err error, n *int) bool {
	if r == nil || status.Code(err) != codes.Unavailable {
		return false
	}
	r.mu.Lock()
	r.tokens = max(r.tokens-1, 0)
	throttled := r.tokens <= retryTokens/2
	r.mu.Unlock()
	if throttled || *n >= r.max {
		return false
	}
	t := time.NewTimer(retryBackoff(*n))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	*n++
	return true
}
