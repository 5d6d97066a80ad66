package frame

import "io"

// Codec is one wire dialect: how frames and the opening preface become
// bytes. [Native] is muxrpc's own. Package channel takes any Codec
// (channel.Config.Codec); what else a second dialect needs is in the
// package documentation.
type Codec interface {
	// NewReader returns a Reader that decodes frames from r and rejects any
	// frame longer than maxFrameSize bytes before allocating for it.
	NewReader(r io.Reader, maxFrameSize int) Reader
	// NewWriter returns a Writer that buffers encoded frames for w.
	NewWriter(w io.Writer) Writer
	// FrameSize is the value f's length field would have once encoded,
	// the number compared with the frame size limit.
	FrameSize(f *Frame) int
}

// Reader decodes a stream of frames. It is not safe for concurrent use.
type Reader interface {
	// ReadPreface reads and checks the peer's preface. It returns an error
	// wrapping ErrBadPreface or ErrVersion if the peer speaks something
	// else.
	ReadPreface() error
	// ReadFrame decodes the next frame into f, overwriting it. f.Payload
	// lives in a pooled buffer that the caller gives back with f.Release.
	// At a clean end of stream it returns io.EOF; in the middle of a frame
	// io.ErrUnexpectedEOF. Invalid frames give errors wrapping ErrMalformed
	// or ErrTooLarge; after any error the stream is unusable.
	ReadFrame(f *Frame) error
	// SetTypeFilter sets the filter of the frames ReadFrame reads from
	// then on. accept, if not nil, is called with each frame's type as
	// soon as its header is read, before its body is read or allocated; an
	// error it returns is returned by ReadFrame (the stream is then
	// unusable). A frame whose header the codec rejects itself (an unknown
	// type, bad flags or xid, a length above the limit) fails with
	// ErrMalformed or ErrTooLarge without a call. A nil accept, the
	// default, accepts every type.
	SetTypeFilter(accept func(Type) error)
}

// Writer encodes frames into a buffer and writes them out on Flush or when
// the buffer fills. It is not safe for concurrent use.
type Writer interface {
	// WritePreface buffers this side's preface.
	WritePreface() error
	// WriteFrame buffers f. It does not release f.
	WriteFrame(f *Frame) error
	// Flush writes out everything buffered.
	Flush() error
}
