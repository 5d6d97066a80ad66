package frame

import "encoding/binary"

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

// encodeBytes makes b, msgpack-encoded, f's payload.
func (f *Frame) encodeBytes(b []byte) {
	if b == nil {
		buf := getBuffer(1)
		buf.b[0] = 0xc0
		f.Payload, f.buf = buf.b, buf
		return
	}
	h := binHeaderLen(len(b))
	buf := getBuffer(h + len(b))
	p := buf.b
	switch h {
	case 2:
		p[0], p[1] = 0xc4, byte(len(b))
	case 3:
		p[0] = 0xc5
		binary.BigEndian.PutUint16(p[1:], uint16(len(b)))
	default:
		p[0] = 0xc6
		binary.BigEndian.PutUint32(p[1:], uint32(len(b)))
	}
	copy(p[h:], b)
	f.Payload, f.buf = p, buf
}

// decodeBytes decodes p into *v if p is exactly one nil, str or bin value,
// reusing *v's capacity as msgpack does; it reports false, leaving *v
// alone, for anything else.
func decodeBytes(p []byte, v *[]byte) bool {
	if len(p) == 0 {
		return false
	}
	var n, h int
	switch c := p[0]; {
	case c == 0xc0:
		if len(p) != 1 {
			return false
		}
		*v = nil
		return true
	case c >= 0xa0 && c <= 0xbf: // fixstr
		n, h = int(c&0x1f), 1
	case (c == 0xc4 || c == 0xd9) && len(p) >= 2: // bin 8, str 8
		n, h = int(p[1]), 2
	case (c == 0xc5 || c == 0xda) && len(p) >= 3: // bin 16, str 16
		n, h = int(binary.BigEndian.Uint16(p[1:])), 3
	case (c == 0xc6 || c == 0xdb) && len(p) >= 5: // bin 32, str 32
		n, h = int(binary.BigEndian.Uint32(p[1:])), 5
	default:
		return false
	}
	if len(p)-h != n {
		return false
	}
	if *v == nil && n == 0 {
		*v = []byte{} // msgpack gives an empty, non-nil slice
		return true
	}
	*v = append((*v)[:0], p[h:]...)
	return true
}
