// Package gateway is edgegate's composition root: it builds the gateway
// from a loaded configuration (build.go), runs its chain of interceptors
// and policies (chain.go), serves its listeners and drains them
// (serve.go), and reloads its configuration (reload.go). The work itself
// is done by the packages it wires: the doors (frontdoor), the policies
// (interceptors/…), the router and proxy (router) and the upstream pools
// (upstream).
package gateway
