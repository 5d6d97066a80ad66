package frame

import (
	"encoding/binary"
	"fmt"
)

// The payloads of many calls are a single byte string. These fast paths
// encode a []byte and decode into a *[]byte without the msgpack encoder or
// decoder, producing and accepting exactly the bytes msgpack does: nil as
// 0xc0, others as bin 8/16/32 (the smallest that fits), and, when decoding,
// str as well as bin.

// binHeaderLen is the size of the bin header msgpack writes for n bytes.
func binHeaderLen(n int) int {
	switch {
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	}
	return 5
}

// encodeBytes returns b, msgpack-encoded, in a pooled buffer.
func encodeBytes(b []byte) *buffer {
	if b == nil {
		buf := getBuffer(1)
		buf.b[0] = 0xc0
		return buf
	}
	h := binHeaderLen(len(b))
	buf := getBuffer(h + len(b))
	putBinHeader(buf.b[:h], len(b))
	copy(buf.b[h:], b)
	return buf
}

// encodeBytesInPlace makes b, msgpack-encoded, f's payload without copying
// it, if b is a tail of f's pooled payload with room before it for its bin
// header, which then overwrites the payload's bytes there. It reports
// whether it did.
func (f *Frame) encodeBytesInPlace(b []byte) bool {
	p := f.Payload
	if f.buf == nil || len(b) == 0 || len(b) > len(p) || &b[len(b)-1] != &p[len(p)-1] {
		return false
	}
	off := len(p) - len(b) // b is p[off:]
	h := binHeaderLen(len(b))
	if off < h {
		return false
	}
	putBinHeader(p[off-h:off], len(b))
	f.Payload = p[off-h:]
	return true
}

// putBinHeader writes the bin header for n bytes into p, which is exactly
// binHeaderLen(n) long.
func putBinHeader(p []byte, n int) {
	switch len(p) {
	case 2:
		p[0], p[1] = 0xc4, byte(n)
	case 3:
		p[0] = 0xc5
		binary.BigEndian.PutUint16(p[1:], uint16(n))
	default:
		p[0] = 0xc6
		binary.BigEndian.PutUint32(p[1:], uint32(n))
	}
}

// decodeBytes decodes p into *v if p is exactly one nil, str or bin value,
// reusing *v's capacity as msgpack does; it reports false, leaving *v
// alone, for anything else.
func decodeBytes(p []byte, v *[]byte) bool {
	b, ok := byteString(p)
	switch {
	case !ok:
		return false
	case b == nil:
		*v = nil
	case len(b) == 0 && *v == nil:
		*v = []byte{} // msgpack gives an empty, non-nil slice
	default:
		*v = append((*v)[:0], b...)
	}
	return true
}

// byteString returns the bytes of the str or bin value that is all of p,
// as a part of p, or nil if p is msgpack nil; ok is false for anything
// else.
func byteString(p []byte) (b []byte, ok bool) {
	if len(p) == 0 {
		return nil, false
	}
	var n, h int
	switch c := p[0]; {
	case c == 0xc0:
		return nil, len(p) == 1
	case c >= 0xa0 && c <= 0xbf: // fixstr
		n, h = int(c&0x1f), 1
	case (c == 0xc4 || c == 0xd9) && len(p) >= 2: // bin 8, str 8
		n, h = int(p[1]), 2
	case (c == 0xc5 || c == 0xda) && len(p) >= 3: // bin 16, str 16
		n, h = int(binary.BigEndian.Uint16(p[1:])), 3
	case (c == 0xc6 || c == 0xdb) && len(p) >= 5: // bin 32, str 32
		n, h = int(binary.BigEndian.Uint32(p[1:])), 5
	default:
		return nil, false
	}
	if len(p)-h != n {
		return nil, false
	}
	return p[h:len(p):len(p)], true
}

// PayloadBytes returns the byte string a payload holds, without copying:
// the result is a part of p (nil for a msgpack nil; an empty p reads as nil,
// as DecodePayload has it). A payload that is not exactly one bin, str or
// nil value gives an error wrapping ErrMalformed.
func PayloadBytes(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return nil, nil
	}
	b, ok := byteString(p)
	if !ok {
		return nil, fmt.Errorf("%w: payload is not a single byte string", ErrMalformed)
	}
	return b, nil
}
