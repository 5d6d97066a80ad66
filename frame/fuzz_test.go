package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/metrics"
	"sort"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// fuzzMaxFrameSize is the frame size limit FuzzReadFrame reads with.
const fuzzMaxFrameSize = 1 << 16

// fuzzMaxPayload bounds the payloads the payload fuzzers look at.
const fuzzMaxPayload = 1 << 16

// goldenSeeds returns the golden frames, in a fixed order.
func goldenSeeds(f *testing.F) [][]byte {
	names := make([]string, 0, len(goldenFrames))
	for name := range goldenFrames {
		names = append(names, name)
	}
	sort.Strings(names)
	var out [][]byte
	for _, name := range names {
		out = append(out, readGolden(f, name))
	}
	return out
}

// FuzzReadFrame feeds arbitrary bytes to the Native reader. It must not
// panic, must fail only with the errors ReadFrame documents, and every
// frame it accepts must encode back to exactly the bytes it was read from
// and decode again to the same frame. Read again one byte at a time, with a
// body buffer that starts at a few bytes and grows, the bytes must give
// the same frames and the same error; read with a type filter, the same
// frames up to the first one the filter refuses.
func FuzzReadFrame(f *testing.F) {
	golden := goldenSeeds(f)
	for _, b := range golden {
		f.Add(b)
	}
	f.Add(bytes.Join(golden, nil))
	f.Add(append(readGolden(f, "preface.hex"), golden[0]...))
	f.Add(u32(math32))
	f.Add(raw(TypeRequest, FlagDeadline|FlagMore, 1, u32(12), u64(1), u16(1), []byte("m")))
	f.Add(bytes.Join([][]byte{
		raw(TypeRequest, FlagKey|FlagMore, 1, u32(6), []byte{1, 'k'}),
		raw(TypeResponse, 0, 9, []byte{0xc0}),
		raw(TypeRequest, FlagMore|FlagPriorityMask, 1, u16(1)),
		raw(TypeRequest, 0, 1, []byte("m"), []byte{0x01}),
	}, nil))
	f.Add(bytes.Join([][]byte{
		raw(TypeResponse, FlagMore, 3, u32(3), []byte{0xa2}),
		raw(TypeResponse, 0, 3, []byte("hi")),
	}, nil))
	f.Add(raw(TypeResponse, FlagMore, 3, u32(math32), []byte{0xa2}))
	f.Add(raw(TypeWant, 0, 1, u32(3)))
	f.Add(raw(TypeTake, 0, 1, u32(0)))
	f.Add(raw(TypeClose, 0, 1))
	f.Add(raw(TypeRequest, FlagStream|FlagKey, 1, u32(8), []byte{2, 'a', 'b'}, u16(1), []byte("m")))
	f.Add(raw(TypeRequest, 0, 1, u16(4), []byte("bomb"), []byte{0xdd, 0xff, 0xff, 0xff, 0xff}))
	f.Add(raw(TypeError, 0, 1, u16(1), u32(math32), u32(0)))
	f.Add(raw(TypePing, 0, 0))
	f.Add(raw(TypePing, 0, 1, []byte{0}))
	f.Add(raw(TypePong, FlagPriorityMask, 1))
	f.Add(raw(TypeChallenge, 0, 0, seq(0, maxNonceSize)))
	f.Add(raw(TypeChallenge, 0, 0, seq(0, NonceSize-1)))
	f.Add(raw(TypeChallenge, 0, 1, seq(0, NonceSize)))
	f.Add(raw(TypeProof, 0, 0, seq(0, proofSize+1)))
	f.Add(append(u32(DefaultMaxFrameSize), raw(TypeRequest, 0, 1, u16(8), []byte("Big.Call"))[4:]...))

	f.Fuzz(func(t *testing.T, data []byte) {
		checkPrefaceFuzz(t, data)

		r := Native.NewReader(bytes.NewReader(data), fuzzMaxFrameSize)
		frames, err := readAllFuzz(t, r, data)

		// One byte at a time, growing the body from a few bytes.
		r = Native.NewReader(iotest.OneByteReader(bytes.NewReader(data)), fuzzMaxFrameSize)
		r.(*nativeReader).step = 5
		pieces, piecesErr := readAllFuzz(t, r, data)
		require.Equal(t, frames, pieces, "read one byte at a time")
		require.Equal(t, fmt.Sprint(err), fmt.Sprint(piecesErr), "read one byte at a time")

		// Through a filter that refuses RESPONSE and PING.
		r = Native.NewReader(bytes.NewReader(data), fuzzMaxFrameSize)
		r.SetTypeFilter(func(typ Type) error {
			if typ == TypeResponse || typ == TypePing {
				return errRefused
			}
			return nil
		})
		filtered, filterErr := readAllFuzz(t, r, data)
		require.Equal(t, frames[:len(filtered)], filtered, "read through a filter")
		if filterErr != errRefused {
			require.Equal(t, frames, filtered, "read through a filter")
			require.Equal(t, fmt.Sprint(err), fmt.Sprint(filterErr), "read through a filter")
			for _, g := range frames {
				require.NotContains(t, []Type{TypeResponse, TypePing}, g.Type, "the filter let it through")
			}
		} else if len(filtered) < len(frames) {
			require.Contains(t, []Type{TypeResponse, TypePing}, frames[len(filtered)].Type, "refused")
		}
	})
}

// readAllFuzz reads up to 64 frames from r, which reads data, checking
// each as FuzzReadFrame says, and returns them, released and with their
// payloads copied, and the error that ended the reading (nil after 64
// frames). Split messages are checked against a model of reassembly:
// each frame ReadFrame returns must encode to the whole frame that the
// chunks of its message make once joined (chunkModel).
func readAllFuzz(t *testing.T, r Reader, data []byte) ([]Frame, error) {
	frames := []Frame{}
	m := chunkModel{rest: data, partial: map[partialKey][]byte{}}
	for range 64 {
		var got Frame
		err := r.ReadFrame(&got)
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, io.ErrUnexpectedEOF) && err != errRefused &&
				!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ReadFrame: unexpected error %v", err)
			}
			if err == io.EOF && len(m.rest) != 0 {
				t.Fatalf("io.EOF with %d bytes unread", len(m.rest))
			}
			require.Nil(t, got.Payload, "payload handed out with error %v", err)
			return frames, err
		}
		want := m.next(t)
		enc := encode(t, &got)
		require.Equal(t, want, enc, "re-encoding %v", &got)
		require.Equal(t, len(want)-4, Native.FrameSize(&got))

		again, err := readOne(enc, fuzzMaxFrameSize)
		require.NoError(t, err, "reading back %v", &got)
		require.Equal(t, visible(&got), visible(again))
		again.Release()
		v := visible(&got)
		v.Payload = bytes.Clone(v.Payload)
		frames = append(frames, v)
		got.Release()
	}
	return frames, nil
}

// chunkModel walks the raw frames of a stream that ReadFrame accepted and
// joins split messages as PROTOCOL.md says: a chunk with FlagMore starts or
// continues the message of its type and xid, the first chunk opening with
// the body's length, and the first frame of that type and xid without it
// ends the message.
type chunkModel struct {
	rest    []byte
	partial map[partialKey][]byte // the first chunk's header, then the bodies so far
}

// next returns the bytes of the next whole message, encoded as one frame.
func (m *chunkModel) next(t *testing.T) []byte {
	for {
		require.GreaterOrEqual(t, len(m.rest), HeaderSize, "ReadFrame returned a frame the model has no bytes for")
		n := int(binary.BigEndian.Uint32(m.rest))
		require.LessOrEqual(t, n, fuzzMaxFrameSize)
		fr := m.rest[:4+n]
		m.rest = m.rest[4+n:]
		typ, flags, xid := Type(fr[4]), Flags(fr[5]), binary.BigEndian.Uint64(fr[6:])
		key := partialKey{typ, xid}
		joined, open := m.partial[key]
		if !open && flags&FlagMore == 0 {
			return fr
		}
		body := fr[HeaderSize:]
		if !open {
			joined = append([]byte(nil), fr[:HeaderSize]...)
			joined[5] &^= byte(FlagMore)
			binary.BigEndian.PutUint32(joined, MinFrameSize+binary.BigEndian.Uint32(body))
			body = body[4:]
		}
		joined = append(joined, body...)
		if flags&FlagMore != 0 {
			m.partial[key] = joined
			continue
		}
		delete(m.partial, key)
		require.Equal(t, int(binary.BigEndian.Uint32(joined)), len(joined)-4, "the joined body's length, against the first chunk's word for it")
		return joined
	}
}

const math32 = 1<<32 - 1

// checkPrefaceFuzz reads data as a preface: it must be accepted exactly
// when it starts with Preface, and fail with a documented error otherwise.
func checkPrefaceFuzz(t *testing.T, data []byte) {
	err := Native.NewReader(bytes.NewReader(data), fuzzMaxFrameSize).ReadPreface()
	switch {
	case bytes.HasPrefix(data, Preface[:]):
		require.NoError(t, err)
	case len(data) == 0:
		require.Equal(t, io.EOF, err)
	case len(data) >= len(Preface) && bytes.HasPrefix(data, Preface[:len(Preface)-1]):
		require.ErrorIs(t, err, ErrVersion)
	default:
		require.ErrorIs(t, err, ErrBadPreface)
	}
}

// payloadSeeds adds the payload cases of the unit tests and the golden
// payloads to a payload fuzzer.
func payloadSeeds(f *testing.F) {
	for _, c := range malformedPayloads {
		f.Add(c.in)
	}
	for _, c := range wellFormedPayloads {
		f.Add(c.in)
	}
	for _, c := range goldenFrames {
		if len(c.frame.Payload) > 0 {
			f.Add(c.frame.Payload)
		}
	}
	f.Add([]byte{})
}

// FuzzDecodePayload decodes arbitrary bytes into an any. It must not
// panic (not even one DecodePayload recovers from), must reject exactly
// what checkPayload rejects with ErrMalformed, must allocate no more than
// a bounded multiple of the input, and a value it returns must encode and
// decode again to the same value.
func FuzzDecodePayload(f *testing.F) {
	payloadSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxPayload {
			return
		}
		var v any
		var err error
		allocated := heapAllocated(func() { err = DecodePayload(data, &v) })
		require.LessOrEqual(t, allocated, maxDecodeAlloc(len(data)), "bytes allocated decoding %d bytes", len(data))
		if err != nil {
			require.NotContains(t, err.Error(), "decoder panicked")
			if len(data) > 0 && checkPayload(data) != nil {
				require.ErrorIs(t, err, ErrMalformed)
			} else {
				require.NotErrorIs(t, err, ErrMalformed, "checkPayload accepted it")
			}
			return
		}
		if len(data) > 0 { // an empty payload stands for nil
			require.NoError(t, checkPayload(data))
		}

		b1 := encodeSorted(t, v)
		require.NoError(t, checkPayload(b1), "re-encoded %x", b1)
		var v2 any
		require.NoError(t, DecodePayload(b1, &v2), "re-encoded %x", b1)
		require.Equal(t, b1, encodeSorted(t, v2), "decoding %x again", b1)
	})
}

// maxDecodeAlloc bounds what decoding n bytes into an any may allocate:
// a fixed allowance, plus a generous factor for the worst case, a map per
// two input bytes. The point is to catch allocations sized by what a
// length field claims rather than by the bytes present.
func maxDecodeAlloc(n int) uint64 {
	return 1<<20 + 1024*uint64(n)
}

// heapAllocated reports roughly how many bytes the heap grew by while fn
// ran. It is cheaper than runtime.ReadMemStats, which stops the world.
func heapAllocated(fn func()) uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	before := sample[0].Value.Uint64()
	fn()
	metrics.Read(sample)
	return sample[0].Value.Uint64() - before
}

// encodeSorted encodes v with map keys in order, so that equal values give
// equal bytes.
func encodeSorted(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	require.NoError(t, enc.Encode(v))
	return buf.Bytes()
}

// FuzzPayloadCheck compares checkPayload, which walks the payload without
// recursion, with refCheck, a plain recursive reading of the rules in
// PROTOCOL.md. They must agree on every input.
func FuzzPayloadCheck(f *testing.F) {
	payloadSeeds(f)
	f.Add(nested(MaxPayloadDepth, 0x80))
	f.Add(nested(MaxPayloadDepth-1, 0x81, 0x90, 0x01))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxPayload {
			return
		}
		err := checkPayload(data)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformed)
		}
		require.Equal(t, refCheck(data), err == nil, "checkPayload: %v", err)
	})
}

func TestCheckPayloadMatchesReference(t *testing.T) {
	for _, c := range malformedPayloads {
		require.False(t, refCheck(c.in), c.name)
	}
	for _, c := range wellFormedPayloads {
		require.True(t, refCheck(c.in), c.name)
	}
	require.True(t, refCheck(nested(254, 0x81, 0xa1, 'k', 0x90)))
	require.False(t, refCheck(nested(255, 0x81, 0xa1, 'k', 0x90)))
	require.True(t, refCheck([]byte{0x92, 0x01, 0x02}))
}

// refCheck reports whether b is exactly one msgpack value that follows
// PROTOCOL.md's payload rules: every length within the bytes that follow,
// arrays and maps nested at most MaxPayloadDepth deep, no array or map as
// a map key, no reserved type byte 0xc1.
func refCheck(b []byte) bool {
	end, ok := refValue(b, 0, 0, false)
	return ok && end == len(b)
}

// refValue checks the value at b[i:], which sits inside depth containers,
// and returns where it ends.
func refValue(b []byte, i, depth int, isKey bool) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	c := b[i]
	i++
	// span skips n bytes of data.
	span := func(n uint64) (int, bool) {
		if n > uint64(len(b)-i) {
			return 0, false
		}
		return i + int(n), true
	}
	// length reads an n-byte big-endian length.
	length := func(n int) (uint64, bool) {
		if n > len(b)-i {
			return 0, false
		}
		var v uint64
		for _, x := range b[i : i+n] {
			v = v<<8 | uint64(x)
		}
		i += n
		return v, true
	}
	var items uint64
	isMap := false
	switch {
	case c <= 0x7f || c >= 0xe0:
		return i, true
	case c <= 0x8f:
		items, isMap = uint64(c&0x0f), true
	case c <= 0x9f:
		items = uint64(c & 0x0f)
	case c <= 0xbf:
		return span(uint64(c & 0x1f))
	case c == 0xc0 || c == 0xc2 || c == 0xc3:
		return i, true
	case c == 0xc1:
		return 0, false
	case c == 0xc4 || c == 0xc5 || c == 0xc6: // bin 8, 16, 32
		n, ok := length(1 << (c - 0xc4))
		if !ok {
			return 0, false
		}
		return span(n)
	case c == 0xd9 || c == 0xda || c == 0xdb: // str 8, 16, 32
		n, ok := length(1 << (c - 0xd9))
		if !ok {
			return 0, false
		}
		return span(n)
	case c == 0xc7 || c == 0xc8 || c == 0xc9: // ext 8, 16, 32
		n, ok := length(1 << (c - 0xc7))
		if !ok {
			return 0, false
		}
		return span(n + 1)
	case c == 0xca:
		return span(4)
	case c == 0xcb:
		return span(8)
	case c >= 0xcc && c <= 0xcf: // uint 8, 16, 32, 64
		return span(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3: // int 8, 16, 32, 64
		return span(1 << (c - 0xd0))
	case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16
		return span(1 + 1<<(c-0xd4))
	case c == 0xdc || c == 0xdd: // array 16, 32
		n, ok := length(2 << (c - 0xdc))
		if !ok {
			return 0, false
		}
		items = n
	case c == 0xde || c == 0xdf: // map 16, 32
		n, ok := length(2 << (c - 0xde))
		if !ok {
			return 0, false
		}
		items, isMap = n, true
	}
	// An array or map.
	if isKey || depth == MaxPayloadDepth {
		return 0, false
	}
	if isMap {
		items *= 2
	}
	for k := uint64(0); k < items; k++ {
		var ok bool
		if i, ok = refValue(b, i, depth+1, isMap && k%2 == 0); !ok {
			return 0, false
		}
	}
	return i, true
}
