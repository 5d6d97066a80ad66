package frame

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// appendWriter is the io.Writer a pooled msgpack encoder writes into.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

type encoderState struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encoderPool = sync.Pool{New: func() any {
	s := &encoderState{}
	s.enc = msgpack.NewEncoder(&s.w)
	return s
}}

// EncodePayload encodes v as msgpack into a pooled buffer and makes it f's
// Payload, releasing any payload f held before. On error f has no payload.
func (f *Frame) EncodePayload(v any) error {
	f.Release()
	s := encoderPool.Get().(*encoderState)
	buf := getBuffer(0)
	s.w.b = buf.b
	err := s.enc.Encode(v)
	buf.b = s.w.b
	s.w.b = nil
	encoderPool.Put(s)
	if err != nil {
		putBuffer(buf)
		return fmt.Errorf("frame: encoding payload: %w", err)
	}
	f.Payload, f.buf = buf.b, buf
	return nil
}

type decoderState struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

var decoderPool = sync.Pool{New: func() any {
	s := &decoderState{}
	s.dec = msgpack.NewDecoder(&s.r)
	return s
}}

// DecodePayload decodes the msgpack value in b into v, which must be a
// non-nil pointer. b must hold exactly one value. An empty b decodes as
// msgpack nil.
//
// The bytes are checked first: a container or string that claims more
// elements or bytes than b has left, nesting deeper than MaxPayloadDepth, or
// a map key that is itself a container makes DecodePayload return an error
// wrapping ErrMalformed before anything is allocated for it. DecodePayload
// never panics on any input.
func DecodePayload(b []byte, v any) (err error) {
	if len(b) == 0 {
		b = nilPayload
	}
	if err := checkPayload(b); err != nil {
		return err
	}
	s := decoderPool.Get().(*decoderState)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decoder panicked: %v", ErrMalformed, p)
		}
		s.r.Reset(nil)
		decoderPool.Put(s)
	}()
	s.r.Reset(b)
	s.dec.Reset(&s.r)
	if err := s.dec.Decode(v); err != nil {
		return fmt.Errorf("frame: decoding payload: %w", err)
	}
	if s.r.Len() != 0 { // cannot happen after checkPayload; kept as a guard
		return fmt.Errorf("%w: %d bytes after the payload value", ErrMalformed, s.r.Len())
	}
	return nil
}

var nilPayload = []byte{0xc0}
