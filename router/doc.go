// Package router is the gateway's routing core: the immutable route table
// compiled from the configuration (method → route → upstream cluster, each
// route carrying its compiled policies), the snapshot that holds a table
// with its upstream pool, the raw-frame codec, the proxy that forwards a
// call to its upstream without decoding the messages, and the in-process
// connection through which the HTTP doors run a call on the chain and the
// proxy.
//
// A Table is never changed after Compile; a configuration reload compiles a
// new one and swaps it in (see Proxy.Swap). Calls in flight keep the
// snapshot they started with.
package router
