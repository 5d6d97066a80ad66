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

// ChunkWriter is implemented by the Writer of a codec that can split a
// message over several frames (FlagMore), as [Native]'s does, so that a
// writer can interleave the chunks of large messages with other frames.
type ChunkWriter interface {
	// WriteChunk buffers, as one frame, the piece of f's body that starts
	// at byte off and holds at most n bytes (at least 1), with FlagMore
	// unless it ends the body, and returns the offset of the next piece:
	// f's body is all written once that equals the body's size (the
	// codec's FrameSize minus MinFrameSize). The first piece carries f's
	// flags and, ahead of the piece, the length of the whole body; the
	// others only FlagMore and the priority bits. f's type must
	// be one that CanSplit allows, and f must not change until its last
	// piece is written. It does not release f.
	WriteChunk(f *Frame, off, n int) (next int, err error)
}
