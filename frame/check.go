package frame

import (
	"encoding/binary"
	"fmt"
)

// MaxPayloadDepth is how deeply arrays and maps may nest in a payload. An
// array or map that is the payload is at depth 1, one inside it at depth 2;
// empty ones count like any other.
const MaxPayloadDepth = 256

// checkPayload walks the msgpack encoding in b without decoding it and
// reports whether b holds exactly one well-formed value whose every length
// fits in the bytes that follow it. It allocates nothing.
func checkPayload(b []byte) error {
	s := decoderPool.Get().(*decoderState)
	err := s.check(b)
	decoderPool.Put(s)
	return err
}

// Estimated bytes that msgpack allocates to decode a payload into an any
// (interface{}), measured with v5.3.6 and rounded up: every value takes a
// boxed interface slot; an array its slice header and backing array; a map
// its header and first group; a long array, which the decoder grows by
// appending, its garbage too; strings, bins and exts their bytes.
const (
	costValue        = 24
	costArray        = 96
	costMap          = 400
	costMapPair      = 32
	costBigArrayItem = 48
	bigArray         = 10000 // the decoder preallocates arrays up to this length
)

// PayloadCostFactor and PayloadCostSlack bound what DecodePayload lets a
// payload cost when decoded into a destination that can hold dynamic values
// (an interface or a map anywhere in its type): the estimated allocation
// may not exceed PayloadCostFactor times the payload's size plus
// PayloadCostSlack bytes. Payloads of many tiny maps or arrays (up to ~140
// bytes allocated per payload byte if unchecked) are what it stops; decode
// such data into typed values (structs, slices of structs) instead, which
// this bound does not apply to.
const (
	PayloadCostFactor = 64
	PayloadCostSlack  = 1 << 20
)

// level is an open array or map while checking a payload.
type level struct {
	left  int  // items still to read in this container
	isMap bool // items alternate key, value
}

// check is checkPayload with the state's reusable nesting stack. The stack
// lives on the heap, grown as deep payloads need it: an array of
// MaxPayloadDepth levels in the stack frame would make every short-lived
// goroutine that decodes grow its goroutine stack.
func (s *decoderState) check(b []byte) error {
	s.stack = s.stack[:0] // the state keeps what it grows to
	cur := level{left: 1}
	i := 0
	s.cost = 0
	for {
		for cur.left == 0 {
			if len(s.stack) == 0 {
				if i != len(b) {
					return fmt.Errorf("%w: %d bytes after the payload value", ErrMalformed, len(b)-i)
				}
				return nil
			}
			cur = s.stack[len(s.stack)-1]
			s.stack = s.stack[:len(s.stack)-1]
		}
		isKey := cur.isMap && cur.left%2 == 0
		cur.left--
		if i >= len(b) {
			return fmt.Errorf("%w: payload ends where a value should start", ErrMalformed)
		}
		c := b[i]
		i++
		// Bytes to skip; items in a new container. They are int64 so that a
		// claimed length of up to 2^32-1, doubled for a map, is compared
		// with the bytes left as it is even where an int has 32 bits.
		var skip, count int64
		isContainer, isMap := false, false
		switch {
		case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		case c <= 0x8f:
			isContainer, isMap, count = true, true, int64(c&0x0f)
		case c <= 0x9f:
			isContainer, count = true, int64(c&0x0f)
		case c <= 0xbf: // fixstr
			skip = int64(c & 0x1f)
		default:
			var err error
			if skip, count, isContainer, isMap, i, err = checkLong(b, i, c); err != nil {
				return err
			}
		}
		if skip > int64(len(b)-i) {
			return fmt.Errorf("%w: value of %d bytes with %d left", ErrMalformed, skip, len(b)-i)
		}
		i += int(skip)
		s.cost += costValue + skip
		if !isContainer {
			continue
		}
		if isKey {
			return fmt.Errorf("%w: map key is an array or a map", ErrMalformed)
		}
		if isMap {
			s.cost += costMap + costMapPair*count
			count *= 2
		} else {
			s.cost += costArray
			if count > bigArray {
				s.cost += costBigArrayItem * count
			}
		}
		if count > int64(len(b)-i) { // every item takes at least one byte
			return fmt.Errorf("%w: container claims %d items with %d bytes left", ErrMalformed, count, len(b)-i)
		}
		// An empty container counts towards the depth like any other.
		if len(s.stack) == MaxPayloadDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrMalformed, MaxPayloadDepth)
		}
		if count == 0 {
			continue
		}
		s.stack = append(s.stack, cur)
		cur = level{left: int(count), isMap: isMap}
	}
}

var errShortLength = fmt.Errorf("%w: payload ends inside a length", ErrMalformed)

// checkLong handles the type bytes 0xc0..0xdf. It returns the number of
// bytes to skip or, for a container, its item count, and the new position.
func checkLong(b []byte, i int, c byte) (skip, count int64, isContainer, isMap bool, next int, err error) {
	// uintN reads an n-byte big-endian length at i.
	uintN := func(n int) (int64, bool) {
		if n > len(b)-i {
			return 0, false
		}
		var v uint64
		switch n {
		case 1:
			v = uint64(b[i])
		case 2:
			v = uint64(binary.BigEndian.Uint16(b[i:]))
		case 4:
			v = uint64(binary.BigEndian.Uint32(b[i:]))
		}
		i += n
		return int64(v), true
	}
	var n int64
	var ok bool
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
	case 0xc1:
		return 0, 0, false, false, i, fmt.Errorf("%w: reserved type byte 0xc1", ErrMalformed)
	case 0xc4, 0xd9: // bin8, str8
		if n, ok = uintN(1); !ok {
			return 0, 0, false, false, i, errShortLength
		}
		skip = n
	case 0xc5, 0xda: // bin16, str16
		if n, ok = uintN(2); !ok {
			return 0, 0, false, false, i, errShortLength
		}
		skip = n
	case 0xc6, 0xdb: // bin32, str32
		if n, ok = uintN(4); !ok {
			return 0, 0, false, false, i, errShortLength
		}
		skip = n
	case 0xc7, 0xc8, 0xc9: // ext8, ext16, ext32: length, then a type byte
		if n, ok = uintN(1 << (c - 0xc7)); !ok {
			return 0, 0, false, false, i, errShortLength
		}
		skip = n + 1
	case 0xca: // float32
		skip = 4
	case 0xcb: // float64
		skip = 8
	case 0xcc, 0xd0: // uint8, int8
		skip = 1
	case 0xcd, 0xd1:
		skip = 2
	case 0xce, 0xd2:
		skip = 4
	case 0xcf, 0xd3:
		skip = 8
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16: type byte, data
		skip = 1 + 1<<(c-0xd4)
	case 0xdc: // array16
		if count, ok = uintN(2); !ok {
			return 0, 0, false, false, i, errShortLength
		}
		isContainer = true
	case 0xdd: // array32
		if count, ok = uintN(4); !ok {
			return 0, 0, false, false, i, errShortLength
		}
		isContainer = true
	case 0xde: // map16
		if count, ok = uintN(2); !ok {
			return 0, 0, false, false, i, errShortLength
		}
		isContainer, isMap = true, true
	case 0xdf: // map32
		if count, ok = uintN(4); !ok {
			return 0, 0, false, false, i, errShortLength
		}
		isContainer, isMap = true, true
	}
	return skip, count, isContainer, isMap, i, nil
}
