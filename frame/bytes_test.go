package frame

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// byteSizes straddle every boundary between msgpack's bin and str forms.
var byteSizes = []int{0, 1, 31, 32, 255, 256, 65535, 65536, 70000}

func TestEncodeBytesMatchesMsgpack(t *testing.T) {
	for _, b := range append([][]byte{nil}, sized(byteSizes)...) {
		want, err := msgpack.Marshal(b)
		require.NoError(t, err)
		var f Frame
		require.NoError(t, f.EncodePayload(b))
		assert.Equal(t, want, f.Payload, "%d bytes (nil: %v)", len(b), b == nil)
		require.NoError(t, f.EncodePayload(&b))
		assert.Equal(t, want, f.Payload, "*[]byte of %d bytes (nil: %v)", len(b), b == nil)
		f.Release()
	}
}

func TestEncodeNilBytesPointer(t *testing.T) {
	var f Frame
	require.NoError(t, f.EncodePayload((*[]byte)(nil)))
	assert.Equal(t, []byte{0xc0}, f.Payload)
	f.Release()
}

func TestDecodeBytesMatchesMsgpack(t *testing.T) {
	var payloads [][]byte
	for _, b := range sized(byteSizes) {
		bin, err := msgpack.Marshal(b)
		require.NoError(t, err)
		str, err := msgpack.Marshal(string(b))
		require.NoError(t, err)
		payloads = append(payloads, bin, str)
	}
	payloads = append(payloads, []byte{0xc0}, nil)
	for _, p := range payloads {
		for _, start := range [][]byte{nil, make([]byte, 3, 100000)} {
			var want []byte
			if start != nil {
				want = start[:len(start):cap(start)]
			}
			wantErr := msgpack.Unmarshal(orNil(p), &want)
			got := start
			err := DecodePayload(p, &got)
			require.Equal(t, wantErr == nil, err == nil, "payload % x...: %v / %v", head(p), err, wantErr)
			assert.Equal(t, want, got, "payload % x...", head(p))
			assert.Equal(t, want == nil, got == nil, "nil-ness for payload % x...", head(p))
			if start != nil && len(got) > 0 && len(got) <= cap(start) {
				assert.Same(t, &start[:1][0], &got[0], "capacity not reused")
			}
		}
	}
}

func TestDecodeBytesFallsBack(t *testing.T) {
	for _, p := range [][]byte{
		{0xc4, 0x02, 'a'},            // shorter than it says
		{0xc4, 0x01, 'a', 'b'},       // a second value after it
		{0x01},                       // not a byte string
		{0xc5, 0x00},                 // header cut short
		{0x92, 0xc4, 0x00, 0xc0},     // an array
		{0xc0, 0xc0},                 // two nils
		{0xd9, 0x01, 'a', 0x00, 0x0}, // str 8 with trailing bytes
	} {
		var got []byte
		assert.False(t, decodeBytes(p, &got), "% x", p)
		assert.Error(t, DecodePayload(p, &got), "% x", p)
	}
}

// FuzzDecodeBytes checks that the fast path agrees with msgpack whenever
// it takes a payload.
func FuzzDecodeBytes(f *testing.F) {
	for _, b := range sized(byteSizes[:6]) {
		p, _ := msgpack.Marshal(b)
		f.Add(p)
		p, _ = msgpack.Marshal(string(b))
		f.Add(p)
	}
	f.Add([]byte{0xc0})
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		var got []byte
		if !decodeBytes(p, &got) {
			return
		}
		var want []byte
		require.NoError(t, msgpack.Unmarshal(p, &want))
		require.Equal(t, want, got)
		require.Equal(t, want == nil, got == nil)
	})
}

func sized(sizes []int) [][]byte {
	out := make([][]byte, len(sizes))
	for i, n := range sizes {
		out[i] = bytes.Repeat([]byte{byte('a' + i)}, n)
	}
	return out
}

func orNil(p []byte) []byte {
	if len(p) == 0 {
		return []byte{0xc0}
	}
	return p
}

func head(p []byte) []byte { return p[:min(len(p), 6)] }

func TestEncodeBytesInPlace(t *testing.T) {
	for _, n := range []int{1, 300, 70000} {
		in, err := msgpack.Marshal(bytes.Repeat([]byte{'x'}, n))
		require.NoError(t, err)
		var f Frame
		buf := getBuffer(len(in))
		copy(buf.b, in)
		f.Payload, f.buf = buf.b, buf
		b, err := PayloadBytes(f.Payload)
		require.NoError(t, err)

		// The whole byte string: the same header lands where it was.
		require.NoError(t, f.EncodePayload(b))
		assert.Same(t, &buf.b[0], &f.Payload[0], "%d bytes: encoded in place", n)
		assert.Equal(t, in, f.Payload)

		// A shorter tail: a header of its own, right before it.
		tail := b[len(b)/2:]
		want, err := msgpack.Marshal(append([]byte(nil), tail...))
		require.NoError(t, err)
		require.NoError(t, f.EncodePayload(tail))
		assert.Same(t, &buf.b[len(buf.b)-1], &f.Payload[len(f.Payload)-1], "%d bytes: tail encoded in place", n)
		assert.Equal(t, want, f.Payload)
		f.Release()
	}

	// Not a tail, or no room for the header: copied into a new buffer.
	for _, part := range [][2]int{{2, 7}, {1, 8}, {0, 3}} {
		var f Frame
		buf := getBuffer(8)
		copy(buf.b, []byte{0xc4, 0x06, 1, 2, 3, 4, 5, 6})
		f.Payload, f.buf = buf.b, buf
		b := buf.b[part[0]:part[1]]
		want, err := msgpack.Marshal(append([]byte(nil), b...))
		require.NoError(t, err)
		require.NoError(t, f.EncodePayload(b))
		assert.NotSame(t, buf, f.buf, "bytes %v: copied", part)
		assert.Equal(t, want, f.Payload, "bytes %v", part)
		f.Release()
	}
}
