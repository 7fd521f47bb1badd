// Package h2srv is the server side of an HTTP/2 connection (RFC 9113),
// built on golang.org/x/net/http2's Framer and hpack, with a per-stream
// handler. It knows nothing of gRPC; it is shaped to make a gRPC call
// cheap: a unary exchange costs one read and one write(2) on the server.
//
// # Goroutines
//
// A connection has one reading goroutine (ServeConn's) and one goroutine
// per stream running the Handler; up to sixteen of those are kept parked
// per connection for the next streams, so a stream seldom starts a
// goroutine or grows a stack. There is no writer goroutine. Streams past
// the running handlers' limit (MaxConcurrentStreams) wait in a queue that
// the returning handlers serve; a queued stream the client resets leaves
// the queue.
//
// # Write path
//
// Every writer (a handler writing its answer, the reader answering
// SETTINGS, PING and flow control) takes the connection's write lock,
// copies its frames into one buffered writer and leaves; the last writer
// to leave flushes. A writer that knows more follows keeps a cork: the
// reader while it works through the frames of one read (it flushes
// before it reads the network again), Write for the frames of one call,
// a handler between Stream.Cork and Stream.Uncork (headers, message and
// trailers in one write). Writes of several streams of a busy connection
// thus share flushes. A writer that has to wait (for window, for request
// data) flushes and drops its corks first. Headers are HPACK-encoded
// under the write lock with the connection's encoder, so encoding order
// is wire order.
//
// # Flow control
//
// The server advertises InitialWindowSize per stream and ConnWindowSize
// for the connection. Received DATA is kept in pooled 16 KiB chunks; its
// window goes back to the client (WINDOW_UPDATE, once half a window has
// gathered) only as the handler reads it, so a slow handler slows its
// client, and a connection never holds more than ConnWindowSize of
// request data. DATA beyond a window is FLOW_CONTROL_ERROR (on the stream
// or the connection). Going the other way, Write sends no more than the
// client's stream and connection windows allow and blocks until they
// reopen, so a slow reader slows its writer; a client that reads nothing
// at all stops the connection's writes in the socket, and nothing
// buffers beyond the writer's fixed buffer. TryWrite sends what the
// windows allow without waiting, for a relay whose reading goroutine must
// not block on one slow client.
//
// # Limits
//
// MaxConcurrentStreams (REFUSED_STREAM past it), MaxHeaderBlockBytes on
// the wire size of one header block, frame headers included (a
// CONTINUATION flood, even of empty frames, ends with GOAWAY
// ENHANCE_YOUR_CALM), MaxHeaderListSize on the decoded list (answered
// by HeaderListTooLarge, or 431), MaxPrematureResets (Rapid Reset, CVE-2023-44487: GOAWAY
// ENHANCE_YOUR_CALM), MaxControlFrames (floods of PING, SETTINGS,
// PRIORITY, RST_STREAM on closed streams, empty DATA, GOAWAY or unknown
// frames: GOAWAY ENHANCE_YOUR_CALM; the allowance comes back with time
// and with every DATA or HEADERS frame the server sends),
// MaxReadFrameSize (FRAME_SIZE_ERROR), WriteTimeout (a flush the client
// does not take in time ends the connection), IdleTimeout and an
// optional PING keepalive. A connection error is a GOAWAY with its
// code, after which the server reads and drops for at most a second
// and 1 MiB (an attacker's, ENHANCE_YOUR_CALM: 100 ms and 64 KiB) before
// closing, so that the client reads the GOAWAY rather than a reset.
//
// The answers the reader owes (SETTINGS and PING ACKs) are written as
// the frames are read, not queued: a client that sends them without
// reading stops the reader in the socket (so its own frames are no
// longer read) until WriteTimeout ends the connection, and nothing
// gathers in memory.
//
// # Shutdown
//
// Shutdown and IdleTimeout close a connection gracefully with two
// GOAWAYs (RFC 9113 §6.8): GOAWAY NO_ERROR naming stream 2^31-1 and a
// PING; on the PING's ACK (or after a second without), GOAWAY NO_ERROR
// naming the last stream the client opened. A stream the client opened
// before it saw the first GOAWAY is thus served, never refused.
//
// # Conformance
//
// SETTINGS are validated and acknowledged, INITIAL_WINDOW_SIZE changes
// apply to open streams, PING is answered, PRIORITY is parsed and ignored
// (a stream depending on itself is PROTOCOL_ERROR), padding is removed,
// unknown frame types are ignored, the stream states are RFC 9113's, and
// request headers are validated (pseudo-headers, lowercase names,
// connection-specific fields, te, content-length against the DATA).
// h2spec 2.2.1 passes 145 of 145 against the package's test handler,
// h2c and TLS (TestH2specEngine in test/).
package h2srv
