package frame

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// mrpcReader reads msgpack-rpc messages. It first walks a message's
// msgpack encoding as its bytes arrive, to find where it ends, holding
// only the bytes received (its buffer grows fourfold at most, from
// bodyStep); then it takes the message's fields apart.
type mrpcReader struct {
	sr      *streamReader
	max     int
	step    int // bodyStep; tests make it small to reach the growing path
	methods map[string]string
	accept  func(Type) error // see SetTypeFilter; nil accepts every type
	msg     *buffer          // the message being read
}

func (r *mrpcReader) SetTypeFilter(accept func(Type) error) { r.accept = accept }

// ReadPreface does nothing: msgpack-rpc has no preface.
func (r *mrpcReader) ReadPreface() error { return nil }

// fill makes the message buffer hold at least n bytes, reading them from
// the stream. It never reads past n, so the stream stays at a message
// boundary once a whole message is read.
func (r *mrpcReader) fill(n int) error {
	b := r.msg.b
	if n <= len(b) {
		return nil
	}
	if n > r.max {
		return fmt.Errorf("%w: msgpack-rpc message of at least %d bytes, limit is %d", ErrTooLarge, n, r.max)
	}
	for len(b) < n {
		if len(b) == cap(b) {
			size := min(n, max(4*len(b), r.step))
			next := getBuffer(size)
			next.b = next.b[:copy(next.b, b)]
			putBuffer(r.msg)
			r.msg = next
			b = next.b
		}
		k, err := r.sr.Read(b[len(b):min(n, cap(b))])
		b = b[:len(b)+k]
		r.msg.b = b
		if err != nil && len(b) < n {
			if err == io.EOF && len(b) > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// lengthBytes is how many bytes of length follow the type byte c.
func lengthBytes(c byte) int {
	switch c {
	case 0xc4, 0xc7, 0xd9:
		return 1
	case 0xc5, 0xc8, 0xda, 0xdc, 0xde:
		return 2
	case 0xc6, 0xc9, 0xdb, 0xdd, 0xdf:
		return 4
	}
	return 0
}

// walk reads from the stream the left values that start at pos, and
// returns where they end.
func (r *mrpcReader) walk(pos, left int) (int, error) {
	for ; left > 0; left-- {
		if err := r.fill(pos + 1); err != nil {
			return 0, err
		}
		c := r.msg.b[pos]
		if err := r.fill(pos + 1 + lengthBytes(c)); err != nil {
			return 0, err
		}
		skip, count, next, err := valueHeader(r.msg.b, pos)
		if err != nil {
			return 0, err
		}
		if count > int64(r.max) || skip > int64(r.max) {
			return 0, fmt.Errorf("%w: msgpack-rpc message claims a value of %d items or bytes, limit is %d", ErrTooLarge, max(count, skip), r.max)
		}
		pos = next + int(skip)
		if err := r.fill(pos); err != nil {
			return 0, err
		}
		// Every item takes at least a byte: a container that claims more
		// items than the limit leaves room for fails here, not later.
		if int64(pos)+int64(left-1)+count > int64(r.max) {
			return 0, fmt.Errorf("%w: msgpack-rpc message claims %d more values after %d bytes, limit is %d bytes", ErrTooLarge, left-1+int(count), pos, r.max)
		}
		left += int(count)
	}
	return pos, nil
}

// valueHeader reads the header of the value at b[i:]: the bytes of data
// that follow the header (skip) and, for an array or map, the values it
// holds (count; twice the pairs of a map); next is where the header ends.
func valueHeader(b []byte, i int) (skip, count int64, next int, err error) {
	if i >= len(b) {
		return 0, 0, 0, fmt.Errorf("%w: message ends where a value should start", ErrMalformed)
	}
	c := b[i]
	next = i + 1
	isMap := false
	switch {
	case c <= 0x7f || c >= 0xe0:
	case c <= 0x8f:
		isMap, count = true, int64(c&0x0f)
	case c <= 0x9f:
		count = int64(c & 0x0f)
	case c <= 0xbf:
		skip = int64(c & 0x1f)
	default:
		if skip, count, _, isMap, next, err = checkLong(b, next, c); err != nil {
			return 0, 0, 0, fmt.Errorf("%w (invalid msgpack)", err)
		}
	}
	if isMap {
		count *= 2
	}
	return skip, count, next, nil
}

// skipValue returns where the value at b[i:], which b holds whole, ends.
func skipValue(b []byte, i int) (int, error) {
	for left := 1; left > 0; left-- {
		skip, count, next, err := valueHeader(b, i)
		if err != nil {
			return 0, err
		}
		if skip > int64(len(b)-next) || count > int64(len(b)-next) {
			return 0, fmt.Errorf("%w: value claims more than the %d bytes left", ErrMalformed, len(b)-next)
		}
		i = next + int(skip)
		left += int(count)
	}
	return i, nil
}

// kindName names the msgpack type that the byte c starts, for errors.
func kindName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || c >= 0xcc && c <= 0xd3:
		return "integer"
	case c <= 0x8f || c == 0xde || c == 0xdf:
		return "map"
	case c <= 0x9f || c == 0xdc || c == 0xdd:
		return "array"
	case c <= 0xbf || c >= 0xd9 && c <= 0xdb:
		return "str"
	case c == 0xc0:
		return "nil"
	case c == 0xc2 || c == 0xc3:
		return "bool"
	case c >= 0xc4 && c <= 0xc6:
		return "bin"
	case c == 0xca || c == 0xcb:
		return "float"
	case c == 0xc1:
		return "reserved byte 0xc1"
	}
	return "ext"
}

// uintValue returns the value of the unsigned integer that is all of p.
func uintValue(p []byte) (uint64, bool) {
	if len(p) == 0 {
		return 0, false
	}
	c := p[0]
	switch {
	case c <= 0x7f:
		return uint64(c), len(p) == 1
	case c >= 0xcc && c <= 0xcf && len(p) == 1+1<<(c-0xcc):
		return readBE(p[1:]), true
	case c >= 0xd0 && c <= 0xd3 && len(p) == 1+1<<(c-0xd0):
		n := len(p) - 1
		shift := 64 - 8*n
		v := int64(readBE(p[1:])<<shift) >> shift
		return uint64(v), v >= 0
	}
	return 0, false
}

// intValue returns the value of the integer that is all of p.
func intValue(p []byte) (int64, bool) {
	if len(p) == 1 && p[0] >= 0xe0 {
		return int64(int8(p[0])), true
	}
	if len(p) > 0 && p[0] >= 0xd0 && p[0] <= 0xd3 && len(p) == 1+1<<(p[0]-0xd0) {
		shift := 64 - 8*(len(p)-1)
		return int64(readBE(p[1:])<<shift) >> shift, true
	}
	v, ok := uintValue(p)
	return int64(v), ok && v <= math.MaxInt64
}

func (r *mrpcReader) ReadFrame(f *Frame) error {
	*f = Frame{}
	r.msg = getBuffer(minReadMessage)
	r.msg.b = r.msg.b[:0]
	err := r.readFrame(f)
	if err != nil || f.buf == nil {
		putBuffer(r.msg)
	}
	r.msg = nil
	if err != nil {
		f.Payload, f.buf = nil, nil
	}
	return err
}

// minReadMessage is the buffer a message is read into at first.
const minReadMessage = 256

func (r *mrpcReader) readFrame(f *Frame) error {
	if err := r.fill(1); err != nil {
		return err // io.EOF at a message boundary
	}
	c := r.msg.b[0]
	if !isArrayStart(c) {
		return fmt.Errorf("%w: msgpack-rpc message is a %s (byte %#02x), not an array", ErrMalformed, kindName(c), c)
	}
	if err := r.fill(1 + lengthBytes(c)); err != nil {
		return err
	}
	_, count, pos, err := valueHeader(r.msg.b, 0)
	if err != nil {
		return err
	}
	if count != 3 && count != 4 {
		return fmt.Errorf("%w: msgpack-rpc message is an array of %d elements, want 3 or 4", ErrMalformed, count)
	}
	end, err := r.walk(pos, 1)
	if err != nil {
		return err
	}
	kind, ok := uintValue(r.msg.b[pos:end])
	switch {
	case !ok:
		return fmt.Errorf("%w: msgpack-rpc message type is a %s, want 0, 1 or 2", ErrMalformed, kindName(r.msg.b[pos]))
	case kind > mrpcNotify:
		return fmt.Errorf("%w: unknown msgpack-rpc message type %d, want 0 (request), 1 (response) or 2 (notification)", ErrMalformed, kind)
	case kind == mrpcNotify && count != 3:
		return fmt.Errorf("%w: msgpack-rpc notification is an array of %d elements, want 3", ErrMalformed, count)
	case kind != mrpcNotify && count != 4:
		return fmt.Errorf("%w: msgpack-rpc %s is an array of %d elements, want 4", ErrMalformed, [...]string{"request", "response"}[kind], count)
	}
	f.Type = [...]Type{TypeRequest, TypeResponse, TypeNotify}[kind]
	if r.accept != nil {
		// The type may still turn into TypeError below; the filter cares
		// about replies as a whole, and takes both alike.
		if err := r.accept(f.Type); err != nil {
			return err
		}
	}
	if _, err := r.walk(end, int(count)-1); err != nil {
		return err
	}
	b := r.msg.b
	pos = end
	if kind != mrpcNotify {
		if end, err = skipValue(b, pos); err != nil {
			return err
		}
		id, ok := uintValue(b[pos:end])
		if !ok || id > math.MaxUint32 {
			return fmt.Errorf("%w: msgpack-rpc msgid is %s, want an unsigned 32-bit integer", ErrMalformed, describe(b[pos:end]))
		}
		f.XID = id
		pos = end
	}
	if end, err = skipValue(b, pos); err != nil {
		return err
	}
	if kind == mrpcResponse {
		return r.readReply(f, pos, end)
	}
	name, ok := byteString(b[pos:end])
	if !ok || name == nil {
		return fmt.Errorf("%w: msgpack-rpc method name is %s, want a str or bin", ErrMalformed, describe(b[pos:end]))
	}
	if len(name) == 0 || len(name) > MaxMethodLen {
		return fmt.Errorf("%w: msgpack-rpc method name of %d bytes", ErrMalformed, len(name))
	}
	f.Method = r.intern(name)
	pos = end
	if end, err = skipValue(b, pos); err != nil {
		return err
	}
	if !isArrayStart(b[pos]) {
		return fmt.Errorf("%w: msgpack-rpc params of %q is a %s, want an array", ErrMalformed, f.Method, kindName(b[pos]))
	}
	return r.keep(f, pos, end)
}

// readReply takes apart [1, msgid, error, result] from the error at
// b[pos:end] on.
func (r *mrpcReader) readReply(f *Frame, pos, end int) error {
	b := r.msg.b
	if b[pos] != 0xc0 { // an error
		e, err := parseMrpcError(b[pos:end])
		if err != nil {
			return fmt.Errorf("%w: msgpack-rpc error of msgid %d: %v", ErrMalformed, f.XID, err)
		}
		if f.XID == 0 {
			return fmt.Errorf("%w: %w", ErrPeerViolation, e)
		}
		f.Type, f.Err = TypeError, e
		if _, err := skipValue(b, end); err != nil {
			return err
		}
		return nil
	}
	pos = end
	if end, err := skipValue(b, pos); err != nil {
		return err
	} else if end != len(b) {
		return fmt.Errorf("%w: %d bytes after the msgpack-rpc message", ErrMalformed, len(b)-end)
	}
	return r.keep(f, pos, len(b))
}

// keep makes b[pos:end] of the message f's payload, in the message's buffer.
func (r *mrpcReader) keep(f *Frame, pos, end int) error {
	f.Payload, f.buf = r.msg.b[pos:end], r.msg
	return nil
}

// intern returns name as a string, reusing an earlier copy when it has one.
func (r *mrpcReader) intern(name []byte) string {
	if s, ok := r.methods[string(name)]; ok {
		return s
	}
	s := string(name)
	if len(r.methods) < maxInterned {
		r.methods[s] = s
	}
	return s
}

// describe names the msgpack value in p for an error: its kind and, for a
// short str, the string.
func describe(p []byte) string {
	if s, ok := byteString(p); ok && s != nil && p[0] >= 0xa0 && p[0] <= 0xbf {
		return fmt.Sprintf("a str (%q)", s)
	}
	if v, ok := intValue(p); ok {
		return fmt.Sprintf("%d", v)
	}
	if len(p) == 0 {
		return "missing"
	}
	return "a " + kindName(p[0])
}

// parseMrpcError maps an error value to a RemoteError, as MsgpackRPC says.
func parseMrpcError(p []byte) (*RemoteError, error) {
	if s, ok := byteString(p); ok && s != nil {
		return &RemoteError{Code: CodeApplication, Message: cut(string(s))}, nil
	}
	if p[0] == 0x92 {
		if end, err := skipValue(p, 1); err == nil {
			t, isInt := intValue(p[1:end])
			msg, isStr := byteString(p[end:])
			if isInt && isStr && msg != nil {
				code := CodeApplication
				if t == nvimValidation {
					code = CodeBadRequest
				}
				return &RemoteError{Code: code, Message: cut(string(msg))}, nil
			}
		}
	}
	var v any
	if err := DecodePayload(p, &v); err != nil {
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		// Well-formed, but not decodable into an any (an ext the decoder
		// does not know): the message shows its bytes.
		return &RemoteError{Code: CodeApplication, Message: cut(fmt.Sprintf("msgpack %x", p))}, nil
	}
	return &RemoteError{Code: CodeApplication, Message: cut(fmt.Sprint(v))}, nil
}

// cut bounds a received error message to MaxMessageLen bytes.
func cut(s string) string {
	if len(s) > MaxMessageLen {
		return s[:MaxMessageLen]
	}
	return s
}
