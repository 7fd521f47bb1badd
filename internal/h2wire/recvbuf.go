package h2wire

import "sync"

// RecvBuf is a stream's received DATA: pooled chunks, so that a stream
// holds memory only for bytes in flight. It is not safe for concurrent
// use.
type RecvBuf struct {
	chunks []*[]byte
	inline [2]*[]byte
	r      int // read offset in chunks[0]
	n      int // bytes held
}

const chunkSize = 16 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}

// Len is how many bytes the buffer holds.
func (b *RecvBuf) Len() int { return b.n }

// Write appends a copy of p.
func (b *RecvBuf) Write(p []byte) {
	if b.chunks == nil {
		b.chunks = b.inline[:0]
	}
	b.n += len(p)
	for len(p) > 0 {
		if len(b.chunks) == 0 || len(*b.chunks[len(b.chunks)-1]) == chunkSize {
			b.chunks = append(b.chunks, chunkPool.Get().(*[]byte))
		}
		last := b.chunks[len(b.chunks)-1]
		k := min(len(p), chunkSize-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
}

// Read moves up to len(p) bytes into p and returns how many.
func (b *RecvBuf) Read(p []byte) int {
	n := 0
	for n < len(p) && len(b.chunks) > 0 {
		first := b.chunks[0]
		k := copy(p[n:], (*first)[b.r:])
		n += k
		b.r += k
		if b.r == len(*first) {
			if len(b.chunks) == 1 && len(*first) < chunkSize {
				// The only chunk has room left: keep it for what comes next.
				*first = (*first)[:0]
				b.r = 0
				break
			}
			release(first)
			b.chunks[0] = nil
			b.chunks = b.chunks[1:]
			b.r = 0
		}
	}
	b.n -= n
	if len(b.chunks) == 0 {
		b.chunks = b.inline[:0]
	}
	return n
}

// Reset drops what the buffer holds and returns its chunks to the pool.
func (b *RecvBuf) Reset() {
	for i, ch := range b.chunks {
		release(ch)
		b.chunks[i] = nil
	}
	b.chunks = b.inline[:0]
	b.r, b.n = 0, 0
}

func release(ch *[]byte) {
	*ch = (*ch)[:0]
	chunkPool.Put(ch)
}
