package h2wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/net/http2"
)

// Frame is a frame that Reader returns: one of x/net's (*http2.DataFrame,
// *http2.SettingsFrame, …) or this package's *HeadersFrame and
// *ContinuationFrame.
type Frame interface {
	Header() http2.FrameHeader
}

// HeadersFrame is a HEADERS frame, its padding removed. It is valid until
// the next ReadFrame.
type HeadersFrame struct {
	http2.FrameHeader
	Priority http2.PriorityParam
	// Fragment is the frame's part of the header block.
	Fragment []byte
}

// StreamEnded reports END_STREAM.
func (f *HeadersFrame) StreamEnded() bool { return f.Flags.Has(http2.FlagHeadersEndStream) }

// HeadersEnded reports END_HEADERS: the block ends with this frame.
func (f *HeadersFrame) HeadersEnded() bool { return f.Flags.Has(http2.FlagHeadersEndHeaders) }

// HasPriority reports the PRIORITY flag (Priority is then set).
func (f *HeadersFrame) HasPriority() bool { return f.Flags.Has(http2.FlagHeadersPriority) }

// ContinuationFrame is a CONTINUATION frame, valid until the next
// ReadFrame.
type ContinuationFrame struct {
	http2.FrameHeader
	// Fragment is the frame's part of the header block.
	Fragment []byte
}

// HeadersEnded reports END_HEADERS: the block ends with this frame.
func (f *ContinuationFrame) HeadersEnded() bool {
	return f.Flags.Has(http2.FlagContinuationEndHeaders)
}

// Reader reads a connection's frames with x/net's Framer (which checks
// their size and the order of HEADERS and CONTINUATION), except that the
// frames every call brings — HEADERS, CONTINUATION, PING, WINDOW_UPDATE,
// RST_STREAM — are parsed here into values the Reader reuses, as the
// Framer (SetReuseFrames) reuses its DATA frames: reading a call's frames
// allocates nothing. A frame is valid until the next ReadFrame. The
// Framer must not be given ReadMetaHeaders (a header block is decoded by
// HeaderDecoder).
//
// Measured with the gateway's BenchmarkNativeGRPC/shared-port
// (2026-12-01): grpc-go's peers send a PING and a WINDOW_UPDATE for about
// three of four calls (its bandwidth estimator), on each side of the
// gateway.
type Reader struct {
	// Framer reads every other frame; set its limits (SetMaxReadFrameSize)
	// and SetReuseFrames.
	Framer *http2.Framer

	r       io.Reader
	buf     []byte
	scratch [8]byte
	detail  error

	headers HeadersFrame
	cont    ContinuationFrame
	ping    http2.PingFrame
	window  http2.WindowUpdateFrame
	reset   http2.RSTStreamFrame
}

// NewReader reads frames from r (the reader the Framer was made with).
func NewReader(fr *http2.Framer, r io.Reader) *Reader {
	return &Reader{Framer: fr, r: r}
}

// ErrorDetail is the reason of the last connection error that ReadFrame
// returned as an http2.ConnectionError, when it has one.
func (r *Reader) ErrorDetail() error {
	if r.detail != nil {
		return r.detail
	}
	return r.Framer.ErrorDetail()
}

// ReadFrame reads the next frame. Its errors are the Framer's:
// http2.ErrFrameTooLarge, an http2.ConnectionError (ErrorDetail says
// why), an http2.StreamError, or the reader's.
func (r *Reader) ReadFrame() (Frame, error) {
	r.detail = nil
	fh, err := r.Framer.ReadFrameHeader()
	if err != nil {
		return nil, err
	}
	switch fh.Type {
	case http2.FrameHeaders, http2.FrameContinuation:
		return r.readHeaders(fh)
	case http2.FramePing:
		p := r.scratch[:8]
		if err := r.fixed(fh, p); err != nil {
			return nil, err
		}
		if fh.StreamID != 0 {
			return nil, r.connError(http2.ErrCodeProtocol, "PING on stream %d", fh.StreamID)
		}
		r.ping = http2.PingFrame{FrameHeader: fh, Data: r.scratch}
		return &r.ping, nil
	case http2.FrameWindowUpdate:
		p := r.scratch[:4]
		if err := r.fixed(fh, p); err != nil {
			return nil, err
		}
		inc := binary.BigEndian.Uint32(p) & (1<<31 - 1)
		if inc == 0 {
			// RFC 9113 §6.9: a stream error, or a connection error on
			// the connection's window.
			if fh.StreamID == 0 {
				return nil, r.connError(http2.ErrCodeProtocol, "WINDOW_UPDATE of 0 on the connection")
			}
			return nil, http2.StreamError{StreamID: fh.StreamID, Code: http2.ErrCodeProtocol, Cause: errors.New("WINDOW_UPDATE of 0")}
		}
		r.window = http2.WindowUpdateFrame{FrameHeader: fh, Increment: inc}
		return &r.window, nil
	case http2.FrameRSTStream:
		p := r.scratch[:4]
		if err := r.fixed(fh, p); err != nil {
			return nil, err
		}
		if fh.StreamID == 0 {
			return nil, r.connError(http2.ErrCodeProtocol, "RST_STREAM on stream 0")
		}
		r.reset = http2.RSTStreamFrame{FrameHeader: fh, ErrCode: http2.ErrCode(binary.BigEndian.Uint32(p))}
		return &r.reset, nil
	}
	return r.Framer.ReadFrameForHeader(fh)
}

// fixed reads the payload of a frame whose length is len(p): a
// FRAME_SIZE_ERROR of the connection for any other (RFC 9113 §6.5-6.9).
func (r *Reader) fixed(fh http2.FrameHeader, p []byte) error {
	if int(fh.Length) != len(p) {
		return r.connError(http2.ErrCodeFrameSize, "%v frame of %d bytes", fh.Type, fh.Length)
	}
	_, err := io.ReadFull(r.r, p)
	return err
}

// keptHeaderBuf bounds the buffer a Reader keeps for HEADERS and
// CONTINUATION payloads; a bigger frame has one of its own.
const keptHeaderBuf = 16 << 10

func (r *Reader) readHeaders(fh http2.FrameHeader) (Frame, error) {
	p := r.buf
	if cap(p) < int(fh.Length) {
		p = make([]byte, max(int(fh.Length), 512))
		if len(p) <= keptHeaderBuf {
			r.buf = p
		}
	}
	p = p[:fh.Length]
	if _, err := io.ReadFull(r.r, p); err != nil {
		return nil, err
	}
	if fh.StreamID == 0 {
		return nil, r.connError(http2.ErrCodeProtocol, "%v on stream 0", fh.Type)
	}
	if fh.Type == http2.FrameContinuation {
		r.cont = ContinuationFrame{FrameHeader: fh, Fragment: p}
		return &r.cont, nil
	}
	r.headers = HeadersFrame{FrameHeader: fh}
	pad := 0
	if fh.Flags.Has(http2.FlagHeadersPadded) {
		if len(p) < 1 {
			return nil, r.connError(http2.ErrCodeFrameSize, "HEADERS too short for its padding")
		}
		pad, p = int(p[0]), p[1:]
	}
	if fh.Flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return nil, r.connError(http2.ErrCodeFrameSize, "HEADERS too short for its priority")
		}
		v := binary.BigEndian.Uint32(p)
		r.headers.Priority = http2.PriorityParam{StreamDep: v & (1<<31 - 1), Exclusive: v>>31 == 1, Weight: p[4]}
		p = p[5:]
	}
	if pad > len(p) {
		// RFC 9113 §6.2: a connection error (the block cannot be decoded).
		return nil, r.connError(http2.ErrCodeProtocol, "HEADERS padding of %d bytes in %d", pad, fh.Length)
	}
	r.headers.Fragment = p[:len(p)-pad]
	return &r.headers, nil
}

func (r *Reader) connError(code http2.ErrCode, format string, a ...any) error {
	r.detail = fmt.Errorf(format, a...)
	return http2.ConnectionError(code)
}
