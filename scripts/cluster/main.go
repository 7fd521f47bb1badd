// Command cluster runs the local replica set of `make cluster` (package
// examples/localcluster): a redis-server, the example backends, three
// gateway replicas of bin/edgegate and HAProxy in front of them, all on
// loopback.
//
//	go run ./scripts/cluster up      start, print the addresses, stop on Ctrl-C
//	go run ./scripts/cluster check   start, check (global limit, rolling restart), stop
//
// check exits 1 when the admitted calls are not within 2 % of the limit or
// a call failed during the rolling restart.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edgegate/edgegate/examples/localcluster"
)

func main() {
	replicas := flag.Int("replicas", 3, "gateway replicas")
	limit := flag.Int("limit", 600, "the global rate limit (requests per hour) that check holds the replicas to")
	drain := flag.Duration("drain", time.Second, "each replica's shutdown_drain_period")
	dir := flag.String("dir", "", "where the configs and logs go; default a new temporary directory")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cluster [flags] up|check\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || (flag.Arg(0) != "up" && flag.Arg(0) != "check") {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(flag.Arg(0), localcluster.Options{Dir: *dir, Replicas: *replicas, Limit: *limit, DrainPeriod: *drain}))
}

func run(mode string, o localcluster.Options) int {
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "edgegate-cluster-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		o.Dir = d
	}
	o.Edgegate, o.Shopd, o.Log = "bin/edgegate", "bin/shopd", os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := localcluster.Start(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Stop()
	fmt.Printf("HAProxy (every door): %s   stats: http://%s/stats   logs and configs: %s\n", c.LB, c.Stats, o.Dir)
	for _, r := range c.Replicas {
		fmt.Printf("  %s: public %s, admin http://%s (/readyz, /metrics)\n", r.Name, r.Addr, r.Admin)
	}
	if mode == "up" {
		fmt.Printf("try: .cache/bin/grpcurl -plaintext -d '{\"message\":\"hi\"}' %s edgegate.testing.v1.EchoService/Unary\n", c.LB)
		fmt.Println("Ctrl-C stops everything")
		<-ctx.Done()
		return 0
	}
	rep, err := c.Check(ctx, localcluster.CheckOptions{})
	fmt.Print(rep)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !rep.Within(2) || rep.Failed() > 0 || rep.CacheHits != rep.CacheAsked {
		fmt.Println("FAIL")
		return 1
	}
	fmt.Println("PASS")
	return 0
}
