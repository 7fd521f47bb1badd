package h2srv

import "golang.org/x/net/http2"

// The write path is internal/h2wire's Writer (c.w): every writer (a
// handler, the reader) takes it, writes its frames into the connection's
// buffered writer and leaves; the last one to leave has the connection's
// flusher flush, so that the answers of streams written at the same
// moment share a write(2). There is no writer goroutine.

// writeGoAway sends GOAWAY with the last stream id the client opened.
func (c *conn) writeGoAway(code http2.ErrCode, debug string) {
	c.mu.Lock()
	last := c.maxClientID
	c.mu.Unlock()
	c.w.Lock()
	c.w.GoAway(last, code, debug)
	c.w.Unlock()
}
