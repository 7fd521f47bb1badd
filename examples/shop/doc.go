// Package shop implements the example shop API (proto/shop) in memory: the
// catalog, orders and users services that the quickstart, the docs and the
// tests run behind edgegate. The implementations are deliberately simple,
// but they answer like real services: resource names are checked, missing
// resources are NOT_FOUND, and bad input fails with google.rpc error
// details.
package shop
