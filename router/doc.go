// Package router is the gateway's routing core: the immutable route table
// compiled from the configuration (method → route → upstream cluster), and
// the proxy that forwards a call to its upstream as raw frames, without
// decoding the messages.
//
// A Table is never changed after Compile; a configuration reload compiles a
// new one and swaps it in (see Proxy.Swap). Calls in flight keep the
// snapshot they started with.
package router
