package frame

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// appendWriter is the io.Writer a pooled msgpack encoder writes into. It
// grows through the buffer pool's size classes, so that a grown buffer goes
// back to the class it fills and the next encoding of that size finds it.
type appendWriter struct{ buf *buffer }

func (w *appendWriter) grow(n int) {
	b := w.buf.b
	if len(b)+n <= cap(b) {
		return
	}
	nb := getBuffer(len(b) + n)
	nb.b = nb.b[:copy(nb.b, b)]
	putBuffer(w.buf)
	w.buf = nb
}

func (w *appendWriter) Write(p []byte) (int, error) {
	w.grow(len(p))
	w.buf.b = append(w.buf.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.grow(1)
	w.buf.b = append(w.buf.b, c)
	return nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.grow(len(s))
	w.buf.b = append(w.buf.b, s...)
	return len(s), nil
}

// maxEncodeHint caps the first buffer an encoding takes, so that one large
// payload does not make every later small one hold a large buffer.
const maxEncodeHint = 64 << 10

type encoderState struct {
	w    appendWriter
	enc  *msgpack.Encoder
	hint int // size of the last payload this state encoded
}

var encoderPool = sync.Pool{New: func() any {
	s := &encoderState{}
	s.enc = msgpack.NewEncoder(&s.w)
	return s
}}

// EncodePayload encodes v as msgpack into a pooled buffer and makes it f's
// Payload, then releases the payload f held before, so v may refer to f's
// own payload bytes. A []byte that is a tail of f's payload with room
// before it for its header, as a server's reply in the frame of the request
// it echoes may be, is encoded where it lies, without a copy.
// On error f has no payload.
func (f *Frame) EncodePayload(v any) error {
	var buf *buffer
	switch b := v.(type) {
	case []byte:
		if f.encodeBytesInPlace(b) {
			return nil
		}
		buf = encodeBytes(b)
	case *[]byte:
		var bs []byte // a nil pointer encodes as nil, as msgpack has it
		if b != nil {
			bs = *b
		}
		buf = encodeBytes(bs)
	default:
		s := encoderPool.Get().(*encoderState)
		s.w.buf = getBuffer(s.hint)
		s.w.buf.b = s.w.buf.b[:0]
		err := s.enc.Encode(v)
		buf = s.w.buf
		s.w.buf = nil
		s.hint = min(len(buf.b), maxEncodeHint)
		encoderPool.Put(s)
		if err != nil {
			putBuffer(buf)
			f.Release()
			return fmt.Errorf("frame: encoding payload: %w", err)
		}
	}
	f.Release()
	f.Payload, f.buf = buf.b, buf
	return nil
}

type decoderState struct {
	r     bytes.Reader
	dec   *msgpack.Decoder
	stack []level // for check
	cost  int64   // set by check: estimated bytes to decode into an any
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
// wrapping ErrMalformed before anything is allocated for it. When v can hold
// dynamic values (an interface or a map anywhere in its type), a payload
// whose decoding is estimated to allocate more than PayloadCostFactor times
// its size plus PayloadCostSlack is refused with an error wrapping
// ErrTooLarge. DecodePayload never panics on any input.
func DecodePayload(b []byte, v any) (err error) {
	if len(b) == 0 {
		b = nilPayload
	}
	if p, ok := v.(*[]byte); ok && p != nil && decodeBytes(b, p) {
		return nil
	}
	s := decoderPool.Get().(*decoderState)
	if err := s.check(b); err != nil {
		decoderPool.Put(s)
		return err
	}
	if limit := PayloadCostFactor*int64(len(b)) + PayloadCostSlack; s.cost > limit && holdsDynamic(reflect.TypeOf(v)) {
		decoderPool.Put(s)
		return fmt.Errorf("%w: a %d-byte payload would take about %d bytes to decode into %T, over the limit of %d",
			ErrTooLarge, len(b), s.cost, v, limit)
	}
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

var dynamicTypes sync.Map // reflect.Type → bool

// holdsDynamic reports whether decoding into t may build values whose shape
// the payload chooses: interfaces, maps, or types that decode themselves.
func holdsDynamic(t reflect.Type) bool {
	if t == nil {
		return true
	}
	if v, ok := dynamicTypes.Load(t); ok {
		return v.(bool)
	}
	d := walkDynamic(t, map[reflect.Type]bool{})
	dynamicTypes.Store(t, d)
	return d
}

var (
	customDecoderType = reflect.TypeFor[msgpack.CustomDecoder]()
	unmarshalerType   = reflect.TypeFor[msgpack.Unmarshaler]()
)

func walkDynamic(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false // a cycle adds nothing new
	}
	seen[t] = true
	if reflect.PointerTo(t).Implements(customDecoderType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.Interface, reflect.Map:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return walkDynamic(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			if walkDynamic(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}
