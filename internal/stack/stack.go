// Package stack grows a goroutine's stack before a call makes it deep.
//
// A goroutine starts with a small stack that the runtime doubles, copying
// it, whenever a call needs more. A proxied call goes deep (the door, the
// interceptor chain, the proxy, grpc-go's client stream), so a goroutine
// started per request had its stack copied two or three times at the
// depth of the call: 12 % of a REST or gRPC-Web call's CPU in the bench
// profiles (runtime.copystack). Growing the stack once, while it is a few
// frames deep, costs a fraction of that.
package stack

// Call is the stack frame Grow asks for: the runtime grows the stack to
// the next power of two that holds it, 32 KiB, which holds a whole call.
const Call = 16 << 10

// never is false; the compiler cannot know it, so Grow keeps its frame.
var never bool

// Grow grows the calling goroutine's stack to hold a Call-sized frame.
// Call it first thing on a goroutine that will run a proxied call.
//
// The frame is declared in a branch that is never taken: the function's
// prologue checks the stack for the whole frame (and grows it), but the
// frame is never zeroed, which cost as much as the growth itself
// (BenchmarkGrow).
//
//go:noinline
func Grow() {
	if never {
		var frame [Call]byte
		touch(&frame)
	}
}

// touch uses the frame, so that it is not optimised away; the frame does
// not escape, so it stays on the stack.
//
//go:noinline
func touch(f *[Call]byte) { f[0] = 1 }
