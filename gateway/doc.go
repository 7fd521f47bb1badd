// Package gateway assembles edgegate from a loaded configuration: the core
// grpc.Server with the interceptor chain (chain.go), the raw-frame proxy of
// package router as the handler of every routed method, gRPC health and
// server reflection, the listeners and their edge limits, and graceful
// draining.
package gateway
