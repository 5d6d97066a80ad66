package frame

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

type point struct {
	X, Y int
	Tag  string `msgpack:"tag,omitempty"`
}

func TestPayloadRoundTrip(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	cases := []struct {
		in  any
		out func() any // a pointer to a fresh value to decode into
	}{
		{nil, func() any { return new(any) }},
		{true, func() any { return new(bool) }},
		{0, func() any { return new(int) }},
		{-1, func() any { return new(int) }},
		{int64(math.MinInt64), func() any { return new(int64) }},
		{uint64(math.MaxUint64), func() any { return new(uint64) }},
		{3.25, func() any { return new(float64) }},
		{float32(-0.5), func() any { return new(float32) }},
		{"", func() any { return new(string) }},
		{"héllo", func() any { return new(string) }},
		{strings.Repeat("s", 70000), func() any { return new(string) }},
		{[]byte{0, 1, 2}, func() any { return new([]byte) }},
		{[]int{1, 2, 3}, func() any { return new([]int) }},
		{[]string{}, func() any { return new([]string) }},
		{map[string]int{"a": 1, "b": 2}, func() any { return new(map[string]int) }},
		{map[int]string{1: "a", -2: "b"}, func() any { return new(map[int]string) }},
		{point{X: 1, Y: -2, Tag: "t"}, func() any { return new(point) }},
		{[]point{{X: 1}, {Y: 2}}, func() any { return new([]point) }},
		{map[string][]map[string]int{"x": {{"y": 1}}}, func() any { return new(map[string][]map[string]int) }},
		{now, func() any { return new(time.Time) }},
		{2 * time.Second, func() any { return new(time.Duration) }},
	}
	for _, c := range cases {
		var f Frame
		require.NoError(t, f.EncodePayload(c.in), "%#v", c.in)
		out := c.out()
		require.NoError(t, DecodePayload(f.Payload, out), "%#v", c.in)
		got := deref(out)
		if tm, ok := got.(time.Time); ok {
			assert.True(t, now.Equal(tm), "time %v, want %v", tm, now)
		} else {
			assert.Equal(t, c.in, got)
		}
		f.Release()
	}
}

// deref returns *p for the pointers TestPayloadRoundTrip decodes into.
func deref(p any) any {
	switch p := p.(type) {
	case *any:
		return *p
	case *bool:
		return *p
	case *int:
		return *p
	case *int64:
		return *p
	case *uint64:
		return *p
	case *float64:
		return *p
	case *float32:
		return *p
	case *string:
		return *p
	case *[]byte:
		return *p
	case *[]int:
		return *p
	case *[]string:
		return *p
	case *map[string]int:
		return *p
	case *map[int]string:
		return *p
	case *point:
		return *p
	case *[]point:
		return *p
	case *map[string][]map[string]int:
		return *p
	case *time.Time:
		return *p
	case *time.Duration:
		return *p
	}
	panic("deref: unexpected type")
}

// TestPayloadAny decodes into an any, as a handler that does not know the
// argument types does.
func TestPayloadAny(t *testing.T) {
	var f Frame
	require.NoError(t, f.EncodePayload(map[string]any{"n": 1, "s": "x", "l": []any{true, nil}}))
	var v any
	require.NoError(t, DecodePayload(f.Payload, &v))
	assert.Equal(t, map[string]any{"n": int8(1), "s": "x", "l": []any{true, nil}}, v)
}

func TestPayloadEmptyIsNil(t *testing.T) {
	for _, b := range [][]byte{nil, {}} {
		var v any
		require.NoError(t, DecodePayload(b, &v))
		assert.Nil(t, v)
		p := &point{X: 1}
		require.NoError(t, DecodePayload(b, &p))
		assert.Nil(t, p)
		n := 5
		require.NoError(t, DecodePayload(b, &n))
		assert.Zero(t, n)
	}
}

func TestEncodePayloadError(t *testing.T) {
	var f Frame
	require.NoError(t, f.EncodePayload(1))
	err := f.EncodePayload(make(chan int))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "frame: encoding payload")
	assert.Nil(t, f.Payload, "a failed encoding leaves no payload")
	assert.Nil(t, f.buf)
}

func TestEncodePayloadReplaces(t *testing.T) {
	var f Frame
	require.NoError(t, f.EncodePayload("first"))
	require.NoError(t, f.EncodePayload(2))
	assert.Equal(t, []byte{0x02}, f.Payload)
	f.Release()
}

// TestEncodePayloadLarge grows the buffer past several size classes.
func TestEncodePayloadLarge(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 3<<20)
	var f Frame
	require.NoError(t, f.EncodePayload(big))
	var got []byte
	require.NoError(t, DecodePayload(f.Payload, &got))
	assert.Equal(t, big, got)
	f.Release()
}

func TestDecodePayloadTypeMismatch(t *testing.T) {
	var f Frame
	require.NoError(t, f.EncodePayload("text"))
	var n int
	err := DecodePayload(f.Payload, &n)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrMalformed, "well-formed msgpack of another type")
	assert.Contains(t, err.Error(), "frame: decoding payload")

	var m map[string]any
	assert.Error(t, DecodePayload([]byte{0x81, 0x01, 0x02}, &m), "an int key does not fit a string-keyed map")
	var mi map[int]int
	require.NoError(t, DecodePayload([]byte{0x81, 0x01, 0x02}, &mi))
	assert.Equal(t, map[int]int{1: 2}, mi)
}

func TestDecodePayloadBadTarget(t *testing.T) {
	assert.Error(t, DecodePayload([]byte{0x01}, nil))
	var n int
	assert.Error(t, DecodePayload([]byte{0x01}, n), "not a pointer")
	assert.Error(t, DecodePayload([]byte{0x01}, (*int)(nil)))
}

// panicker's decoder panics, standing for a bug in a user's decoder or in
// msgpack itself.
type panicker struct{}

func (*panicker) DecodeMsgpack(*msgpack.Decoder) error { panic("decoder bug") }

func TestDecodePayloadRecoversPanic(t *testing.T) {
	var p panicker
	err := DecodePayload([]byte{0x01}, &p)
	assert.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "decoder bug")

	// The pooled decoder is still usable.
	var n int
	require.NoError(t, DecodePayload([]byte{0x07}, &n))
	assert.Equal(t, 7, n)
}

// nested returns depth arrays of one item each around inner.
func nested(depth int, inner ...byte) []byte {
	return append(bytes.Repeat([]byte{0x91}, depth), inner...)
}

// malformedPayloads are byte strings that DecodePayload must reject
// before the msgpack decoder sees them. The first three are the bombs that
// kill or bloat msgpack v5.4.1 when decoded into an any.
var malformedPayloads = []struct {
	name string
	in   []byte
}{
	{"array32 claiming 2^32-1 items", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
	{"map32 claiming 2^32-1 pairs", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
	{"bin32 claiming 4 GiB", []byte{0xc6, 0xff, 0xff, 0xff, 0xff}},
	{"str32 claiming 4 GiB", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}},
	{"ext32 claiming 4 GiB", []byte{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}},
	{"ext16 claiming 64 KiB", []byte{0xc8, 0xff, 0xff, 0x01, 0x00}},
	{"ext8 one byte short", []byte{0xc7, 0x02, 0x01, 0x00}},
	{"ext8 without its type", []byte{0xc7, 0x00}},
	{"array16 claiming more than left", []byte{0xdc, 0xff, 0xff, 0x01, 0x02}},
	{"array16 claiming one more than left", []byte{0xdc, 0x00, 0x03, 0x01, 0x02}},
	{"map16 claiming more pairs than left", []byte{0xde, 0x00, 0x02, 0xa1, 'a', 0x01}},
	{"fixmap missing a value", []byte{0x81, 0xa1, 'a'}},
	{"fixarray missing an item", []byte{0x92, 0x01}},
	{"bin8 past the end", []byte{0xc4, 0x05, 0x00}},
	{"bin16 past the end", []byte{0xc5, 0x01, 0x00, 0x00}},
	{"str8 past the end", []byte{0xd9, 0x05, 'a'}},
	{"str16 past the end", []byte{0xda, 0x00, 0x02, 'a'}},
	{"fixstr past the end", []byte{0xa3, 'a', 'b'}},
	{"array32 inside an array, bin32 inside that", []byte{0x91, 0xdd, 0x00, 0x00, 0x00, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff}},
	{"map32 bomb as a map value", []byte{0x81, 0xa1, 'k', 0xdf, 0xff, 0xff, 0xff, 0xff}},
	{"deeper than 256", nested(257, 0xc0)},
	{"empty array at depth 257", nested(256, 0x90)},
	{"empty map at depth 257", nested(256, 0x80)},
	{"map at depth 257", nested(256, 0x81, 0x01, 0x02)},
	{"map with an array key", []byte{0x81, 0x90, 0x01}},
	{"map with a map key", []byte{0x81, 0x80, 0x01}},
	{"map16 with an array key", []byte{0xde, 0x00, 0x01, 0x91, 0x01, 0x01}},
	{"map with an array key second", []byte{0x82, 0x01, 0x01, 0x92, 0x01, 0x02, 0x01}},
	{"nested map with an array key", []byte{0x81, 0x01, 0x81, 0x90, 0xc0}},
	{"trailing byte", []byte{0x01, 0x02}},
	{"two nils", []byte{0xc0, 0xc0}},
	{"array then a trailing byte", []byte{0x91, 0x01, 0x01}},
	{"reserved 0xc1", []byte{0xc1}},
	{"reserved 0xc1 in an array", []byte{0x92, 0x01, 0xc1}},
	{"reserved 0xc1 as a map key", []byte{0x81, 0xc1, 0x01}},
	{"bin32 length cut short", []byte{0xc6, 0xff}},
	{"bin16 length cut short", []byte{0xc5, 0x01}},
	{"bin8 without its length", []byte{0xc4}},
	{"str32 length cut short", []byte{0xdb, 0x00, 0x00}},
	{"array32 length cut short", []byte{0xdd, 0x00}},
	{"array16 length cut short", []byte{0xdc, 0x00}},
	{"map32 length cut short", []byte{0xdf, 0x00, 0x00, 0x00}},
	{"map16 without its length", []byte{0xde}},
	{"ext32 length cut short", []byte{0xc9, 0x00, 0x00}},
	{"uint16 cut short", []byte{0xcd, 0x01}},
	{"uint64 cut short", []byte{0xcf, 0, 0, 0, 0, 0, 0, 0}},
	{"int32 cut short", []byte{0xd2, 0x01}},
	{"float32 cut short", []byte{0xca, 0x00}},
	{"float64 cut short", []byte{0xcb, 0x00}},
	{"fixext1 without data", []byte{0xd4, 0x01}},
	{"fixext16 cut short", append([]byte{0xd8, 0x01}, make([]byte, 15)...)},
	// On a 32-bit platform a length of 2^32-1 read as an int is -1; it must
	// not move the validator backwards.
	{"bin32 of 2^32-1 then one byte", []byte{0x92, 0xc6, 0xff, 0xff, 0xff, 0xff}},
	{"str32 of 2^32-6 stepping back", []byte{0x92, 0xdb, 0xff, 0xff, 0xff, 0xfa}},
	{"ext32 of 2^32-1 then one byte", []byte{0x92, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}},
	{"map32 of 2^31 pairs", []byte{0xdf, 0x80, 0x00, 0x00, 0x00}},
}

func TestDecodePayloadMalformed(t *testing.T) {
	for _, c := range malformedPayloads {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorIs(t, checkPayload(c.in), ErrMalformed)
			var v any
			err := DecodePayload(c.in, &v)
			assert.ErrorIs(t, err, ErrMalformed)
			assert.Nil(t, v, "nothing is decoded")
		})
	}
}

// TestDecodePayloadBombsAreCheap checks that rejecting a bomb costs a few
// small allocations for the error, not what the bomb claims.
func TestDecodePayloadBombsAreCheap(t *testing.T) {
	for _, c := range malformedPayloads {
		var v any
		var err error
		allocated := bytesAllocated(func() {
			for range 10 {
				err = DecodePayload(c.in, &v)
			}
		})
		assert.ErrorIs(t, err, ErrMalformed, c.name)
		assert.Less(t, allocated, uint64(64<<10), "%s: bytes allocated by 10 decodings", c.name)
		if raceEnabled {
			continue // sync.Pool drops items at random under the race detector
		}
		allocs := testing.AllocsPerRun(10, func() { err = DecodePayload(c.in, &v) })
		assert.LessOrEqual(t, allocs, 6.0, "%s: allocations per decoding", c.name)
	}
}

func TestCheckPayloadAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	big := append([]byte{0xdc, 0x10, 0x00}, bytes.Repeat([]byte{0x81, 0xa1, 'k', 0x91, 0xc0}, 0x1000)...)
	inputs := [][]byte{nested(256, 0x01), big, {0xc0}}
	for _, in := range inputs {
		allocs := testing.AllocsPerRun(20, func() {
			if err := checkPayload(in); err != nil {
				t.Fatal(err)
			}
		})
		assert.Zero(t, allocs)
	}
}

// wellFormedPayloads are accepted by the validator and decode into an any.
var wellFormedPayloads = []struct {
	name string
	in   []byte
}{
	{"nil", []byte{0xc0}},
	{"positive fixint", []byte{0x7f}},
	{"negative fixint", []byte{0xe0}},
	{"uint64", []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	{"float64 NaN", []byte{0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}},
	{"empty fixstr", []byte{0xa0}},
	{"str8 filling the payload", []byte{0xd9, 0x03, 'a', 'b', 'c'}},
	{"bin16", []byte{0xc5, 0x00, 0x01, 0x00}},
	{"empty array32", []byte{0xdd, 0x00, 0x00, 0x00, 0x00}},
	{"empty map32", []byte{0xdf, 0x00, 0x00, 0x00, 0x00}},
	{"array16 of as many items as bytes left", []byte{0xdc, 0x00, 0x03, 0x01, 0x02, 0x03}},
	{"depth 256", nested(256, 0xc0)},
	{"empty array at depth 256", nested(255, 0x90)},
	{"map at depth 256", nested(255, 0x81, 0xa1, 'k', 0x01)},
	{"map with a bin key", []byte{0x81, 0xc4, 0x01, 'k', 0x01}},
	{"map with an array value", []byte{0x81, 0xa1, 'k', 0x91, 0x01}},
	{"map with a map value", []byte{0x81, 0xa1, 'k', 0x81, 0xa1, 'j', 0xc0}},
	{"timestamp32", []byte{0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00}},
}

func TestDecodePayloadWellFormed(t *testing.T) {
	for _, c := range wellFormedPayloads {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, checkPayload(c.in))
			var v any
			require.NoError(t, DecodePayload(c.in, &v))
		})
	}
}

// Values of types the checker accepts but that an any cannot hold are
// errors of the decoder, not ErrMalformed.
func TestDecodePayloadUnknownExt(t *testing.T) {
	in := []byte{0xd4, 0x42, 0x00} // fixext1 of type 0x42, which nobody registered
	require.NoError(t, checkPayload(in))
	var v any
	err := DecodePayload(in, &v)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrMalformed))
}
