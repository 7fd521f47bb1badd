// Package grpczstd registers a "zstd" compressor with grpc-go (package
// google.golang.org/grpc/encoding), alongside gzip, so that native gRPC
// clients may send and receive grpc-encoding: zstd, and clusters may be
// sent zstd messages. It uses klauspost/compress/zstd.
//
// A message is decoded as a stream: grpc-go reads at most one byte over
// the receive limit (limits.max_message_bytes) and refuses a larger
// message with RESOURCE_EXHAUSTED, so a small message that decodes to a
// huge one (a bomb) costs no more than the limit.
package grpczstd

import (
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
)

// Name is the compressor's grpc-encoding.
const Name = "zstd"

// maxWindow bounds the window a message may ask the decoder for (the
// encoder's default for messages of up to 8 MiB).
const maxWindow = 8 << 20

// maxMemory is the largest message limit a configuration may set
// (limits.max_message_bytes, cluster max_message_bytes).
const maxMemory = 256 << 20

func init() {
	encoding.RegisterCompressor(&compressor{})
}

type compressor struct {
	encoders sync.Pool
	decoders sync.Pool
}

func (*compressor) Name() string { return Name }

type writer struct {
	*zstd.Encoder
	c *compressor
}

// Compress returns a writer that compresses onto w; its Close ends the
// message and returns the encoder to the pool.
func (c *compressor) Compress(w io.Writer) (io.WriteCloser, error) {
	if e, ok := c.encoders.Get().(*writer); ok {
		e.Reset(w)
		return e, nil
	}
	e, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		return nil, err
	}
	return &writer{Encoder: e, c: c}, nil
}

func (w *writer) Close() error {
	err := w.Encoder.Close()
	w.c.encoders.Put(w)
	return err
}

type reader struct {
	*zstd.Decoder
	c *compressor
}

// Decompress returns a reader of the decoded message; grpc-go closes it,
// which returns the decoder to the pool.
func (c *compressor) Decompress(r io.Reader) (io.Reader, error) {
	if d, ok := c.decoders.Get().(*reader); ok {
		if err := d.Reset(r); err != nil {
			return nil, err
		}
		return d, nil
	}
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderLowmem(true),
		// What one call may decode at once at most (grpc-go bounds the
		// message lower, by the receive limit, as it reads the stream).
		zstd.WithDecoderMaxMemory(maxMemory))
	if err != nil {
		return nil, err
	}
	return &reader{Decoder: d, c: c}, nil
}

func (r *reader) Close() error {
	_ = r.Reset(nil)
	r.c.decoders.Put(r)
	return nil
}
