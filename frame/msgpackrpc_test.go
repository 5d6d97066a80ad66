package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// mrpcWrite writes frames with the MsgpackRPC writer and returns the bytes.
func mrpcWrite(t testing.TB, frames ...*Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := MsgpackRPC.NewWriter(&buf)
	require.NoError(t, w.WritePreface())
	for _, f := range frames {
		require.NoError(t, w.WriteFrame(f))
	}
	require.NoError(t, w.Flush())
	return buf.Bytes()
}

// mrpcRead reads one frame from b.
func mrpcRead(t testing.TB, b []byte) (*Frame, error) {
	t.Helper()
	r := MsgpackRPC.NewReader(bytes.NewReader(b), 0)
	require.NoError(t, r.ReadPreface())
	f := &Frame{}
	err := r.ReadFrame(f)
	t.Cleanup(f.Release)
	return f, err
}

func payloadFrame(t testing.TB, f *Frame, v any) *Frame {
	t.Helper()
	require.NoError(t, f.EncodePayload(v))
	t.Cleanup(f.Release)
	return f
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// TestMsgpackRPCBytes pins the bytes of each message kind.
func TestMsgpackRPCBytes(t *testing.T) {
	tests := []struct {
		name string
		f    *Frame
		want string
	}{
		{"request", payloadFrame(t, &Frame{Type: TypeRequest, XID: 1, Method: "nvim_eval"}, []string{"1+2"}),
			"94 00 01 a9 6e76696d5f6576616c 91 a3 312b32"},
		{"request, typed ints compacted", payloadFrame(t, &Frame{Type: TypeRequest, XID: 300, Method: "m"}, []any{uint32(7), int64(-1), int64(-200), uint64(1 << 40)}),
			"94 00 cd012c a1 6d 94 07 ff d1ff38 cf0000010000000000"},
		{"request, msgid at 2^32-1", payloadFrame(t, &Frame{Type: TypeRequest, XID: math.MaxUint32, Method: "m"}, []int{}),
			"94 00 ceffffffff a1 6d 90"},
		{"request, non-array args wrapped", payloadFrame(t, &Frame{Type: TypeRequest, XID: 2, Method: "m"}, "x"),
			"94 00 02 a1 6d 91 a1 78"},
		{"request, nil args", payloadFrame(t, &Frame{Type: TypeRequest, XID: 2, Method: "m"}, nil),
			"94 00 02 a1 6d 90"},
		{"request, map args wrapped, int64 inside compacted", payloadFrame(t, &Frame{Type: TypeRequest, XID: 2, Method: "m"}, map[string]int64{"k": 1}),
			"94 00 02 a1 6d 91 81 a1 6b 01"},
		{"deadline is not sent", payloadFrame(t, &Frame{Type: TypeRequest, Flags: FlagDeadline, Budget: 5, XID: 2, Method: "m"}, nil),
			"94 00 02 a1 6d 90"},
		{"notify", payloadFrame(t, &Frame{Type: TypeNotify, Method: "note"}, []any{"a", 1}),
			"93 02 a4 6e6f7465 92 a1 61 01"},
		{"response", payloadFrame(t, &Frame{Type: TypeResponse, XID: 3}, map[string]any{"a": int64(5)}),
			"94 01 03 c0 81 a1 61 05"},
		{"response, nil result", &Frame{Type: TypeResponse, XID: 3},
			"94 01 03 c0 c0"},
		{"error, application", &Frame{Type: TypeError, XID: 4, Err: &RemoteError{Code: CodeApplication, Message: "bad", Trace: "not sent"}},
			"94 01 04 92 00 a3 626164 c0"},
		{"error, bad request as Validation", &Frame{Type: TypeError, XID: 4, Err: &RemoteError{Code: CodeBadRequest, Message: "v"}},
			"94 01 04 92 01 a1 76 c0"},
		{"error, no method as Validation", &Frame{Type: TypeError, XID: 4, Err: &RemoteError{Code: CodeNoMethod, Message: "v"}},
			"94 01 04 92 01 a1 76 c0"},
		{"error, panic as Exception", &Frame{Type: TypeError, XID: 4, Err: &RemoteError{Code: CodePanic, Message: "p"}},
			"94 01 04 92 00 a1 70 c0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mrpcWrite(t, tt.f)
			assert.Equal(t, hex.EncodeToString(unhex(t, tt.want)), hex.EncodeToString(got))
			assert.LessOrEqual(t, len(got), MsgpackRPC.FrameSize(tt.f), "FrameSize is an upper bound")
		})
	}
}

// TestMsgpackRPCDrops checks that the frames msgpack-rpc has no form for
// leave no byte, and that the dialect says so through Limits.
func TestMsgpackRPCDrops(t *testing.T) {
	l := MsgpackRPC.(Limits)
	assert.Equal(t, 32, l.XIDBits())
	for _, typ := range []Type{TypeCancel, TypeGoAway, TypePing, TypePong, TypeChallenge, TypeProof} {
		f := &Frame{Type: typ, XID: 1, Err: &RemoteError{Code: CodeShutdown}}
		assert.Empty(t, mrpcWrite(t, f), "%v", typ)
		assert.False(t, l.Carries(typ), "%v", typ)
		assert.Zero(t, MsgpackRPC.FrameSize(f))
	}
	for _, typ := range []Type{TypeRequest, TypeNotify, TypeResponse, TypeError} {
		assert.True(t, l.Carries(typ), "%v", typ)
	}
	var buf bytes.Buffer
	w := MsgpackRPC.NewWriter(&buf)
	err := w.WriteFrame(&Frame{Type: TypeRequest, XID: 1 << 32, Method: "m"})
	assert.ErrorIs(t, err, ErrMalformed, "an xid above 2^32-1")
	err = w.WriteFrame(&Frame{Type: TypeRequest, XID: 1})
	assert.ErrorIs(t, err, ErrMalformed, "no method")
}

// TestMsgpackRPCRoundTrip writes frames and reads them back, whole and one
// byte at a time.
func TestMsgpackRPCRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 3*directWrite)
	var wg sync.WaitGroup
	referred := &Frame{Type: TypeRequest, XID: 9, Method: "put"}
	referred.ReferBytes(big, &wg)
	frames := []*Frame{
		payloadFrame(t, &Frame{Type: TypeRequest, XID: 0, Method: "zero"}, []int{1}),
		payloadFrame(t, &Frame{Type: TypeRequest, XID: math.MaxUint32, Method: "max"}, []int{1}),
		payloadFrame(t, &Frame{Type: TypeNotify, Method: "n"}, []string{"a"}),
		payloadFrame(t, &Frame{Type: TypeResponse, XID: 7}, "result"),
		{Type: TypeError, XID: 8, Err: &RemoteError{Code: CodeBadRequest, Message: "Invalid buffer id: 999"}},
		referred,
		payloadFrame(t, &Frame{Type: TypeResponse, XID: 10}, big),
	}
	stream := mrpcWrite(t, frames...)
	referred.Release()
	wg.Wait()
	want := []string{
		`REQUEST xid=0 method="zero" payload=2B`,
		`REQUEST xid=4294967295 method="max" payload=2B`,
		`NOTIFY xid=0 method="n" payload=3B`,
		`RESPONSE xid=7 payload=7B`,
		`ERROR xid=8 err="remote: BadRequest: Invalid buffer id: 999" payload=0B`,
		`REQUEST xid=9 method="put" payload=98310B`,
		`RESPONSE xid=10 payload=98309B`,
	}
	for _, src := range []io.Reader{bytes.NewReader(stream), iotest.OneByteReader(bytes.NewReader(stream))} {
		r := MsgpackRPC.NewReader(src, 0)
		r.(*mrpcReader).step = 5
		var got []string
		for {
			var f Frame
			err := r.ReadFrame(&f)
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			got = append(got, f.String())
			if f.Method == "put" {
				var b []byte
				require.NoError(t, DecodePayload(f.Payload, &[]any{&b}))
				assert.Equal(t, big, b)
			}
			f.Release()
		}
		assert.Equal(t, want, got)
	}
}

// TestMsgpackRPCReadsPeers reads messages as other implementations write
// them: method names as bin, integers at any width, errors as strings and
// as other values.
func TestMsgpackRPCReadsPeers(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"method as bin (pynvim)", "94 00 01 c4 03 616464 92 01 02", `REQUEST xid=1 method="add" payload=3B`},
		{"msgid as uint32", "94 00 ce00000005 a1 6d 90", `REQUEST xid=5 method="m" payload=1B`},
		{"msgid as int64", "94 01 d30000000000000005 c0 07", `RESPONSE xid=5 payload=1B`},
		{"array16 envelope", "dc0003 02 a1 6e 90", `NOTIFY xid=0 method="n" payload=1B`},
		{"error as a str (pynvim's handlers)", "94 01 02 a4 6f6f7073 c0", `ERROR xid=2 err="remote: Application: oops" payload=0B`},
		{"error as [type, bin]", "94 01 02 92 01 c4 01 76 c0", `ERROR xid=2 err="remote: BadRequest: v" payload=0B`},
		{"error of another shape", "94 01 02 82 a1 61 01 a1 62 02 c0", `ERROR xid=2 err="remote: Application: map[a:1 b:2]" payload=0B`},
		{"error as [other type, msg]", "94 01 02 92 07 a1 65 c0", `ERROR xid=2 err="remote: Application: e" payload=0B`},
		{"error with a result too", "94 01 02 92 00 a1 65 07", `ERROR xid=2 err="remote: Application: e" payload=0B`},
		{"error as an unknown ext", "94 01 02 d4 05 01 c0", `ERROR xid=2 err="remote: Application: msgpack d40501" payload=0B`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := mrpcRead(t, unhex(t, tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, f.String())
		})
	}
}

// TestMsgpackRPCViolations checks that each protocol violation fails the
// read with an error wrapping ErrMalformed or ErrTooLarge that names it.
func TestMsgpackRPCViolations(t *testing.T) {
	tests := []struct {
		name, in string
		is       error
		says     string
	}{
		{"not an array", "81 a1 61 01", ErrMalformed, "is a map (byte 0x81), not an array"},
		{"array of 2", "92 00 01", ErrMalformed, "array of 2 elements, want 3 or 4"},
		{"array of 5", "95 00 01 a1 6d 90 c0", ErrMalformed, "array of 5 elements, want 3 or 4"},
		{"unknown type", "94 07 01 a1 6d 90", ErrMalformed, "unknown msgpack-rpc message type 7"},
		{"negative type", "94 ff 01 a1 6d 90", ErrMalformed, "message type is a integer"},
		{"str type", "94 a1 30 01 a1 6d 90", ErrMalformed, "message type is a str"},
		{"request of 3", "93 00 01 a1 6d", ErrMalformed, "request is an array of 3 elements, want 4"},
		{"notification of 4", "94 02 a1 6d 90 c0", ErrMalformed, "notification is an array of 4 elements, want 3"},
		{"string msgid", "94 00 a1 31 a1 6d 90", ErrMalformed, `msgid is a str ("1"), want an unsigned 32-bit integer`},
		{"negative msgid", "94 00 ff a1 6d 90", ErrMalformed, "msgid is -1"},
		{"msgid above 2^32-1", "94 00 cf0000000100000000 a1 6d 90", ErrMalformed, "msgid is 4294967296"},
		{"method as int", "94 00 01 05 90", ErrMalformed, "method name is 5, want a str or bin"},
		{"method nil", "94 00 01 c0 90", ErrMalformed, "method name is a nil"},
		{"empty method", "94 00 01 a0 90", ErrMalformed, "method name of 0 bytes"},
		{"params not an array", "94 00 01 a1 6d 05", ErrMalformed, `params of "m" is a integer, want an array`},
		{"invalid msgpack 0xc1", "94 00 01 c1 90", ErrMalformed, "reserved type byte 0xc1 (invalid msgpack)"},
		{"error for msgid 0 (Neovim's report)", "94 01 00 92 00 a4 62616421 c0", ErrPeerViolation, "remote: Application: bad!"},
		{"claims more items than the limit", "94 00 01 a1 6d dd7fffffff", ErrTooLarge, "limit is"},
		{"claims a longer str than the limit", "94 00 01 db7fffffff", ErrTooLarge, "limit is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mrpcRead(t, unhex(t, tt.in))
			require.ErrorIs(t, err, tt.is)
			assert.Contains(t, err.Error(), tt.says)
		})
	}
	_, err := mrpcRead(t, unhex(t, "94 01 00 92 00 a4 62616421 c0"))
	var re *RemoteError
	require.ErrorAs(t, err, &re, "Neovim's report of a violation carries its message")
	assert.Equal(t, "bad!", re.Message)
}

// TestMsgpackRPCEOF checks the ends of a stream: io.EOF between messages,
// io.ErrUnexpectedEOF inside one.
func TestMsgpackRPCEOF(t *testing.T) {
	_, err := mrpcRead(t, nil)
	assert.Equal(t, io.EOF, err)
	whole := unhex(t, "94 00 01 a1 6d 92 a3 616263 cd0102")
	for n := 1; n < len(whole); n++ {
		_, err := mrpcRead(t, whole[:n])
		assert.Equal(t, io.ErrUnexpectedEOF, err, "cut after %d bytes", n)
	}
}

// TestMsgpackRPCTypeFilter checks that the filter sees the type before the
// rest of the message is read.
func TestMsgpackRPCTypeFilter(t *testing.T) {
	refused := errors.New("refused")
	// The message claims a str of 1 MiB that never comes.
	r := MsgpackRPC.NewReader(bytes.NewReader(unhex(t, "94 01 01 c0 db00100000 61")), 0)
	var seen []Type
	r.SetTypeFilter(func(typ Type) error { seen = append(seen, typ); return refused })
	var f Frame
	assert.ErrorIs(t, r.ReadFrame(&f), refused)
	assert.Equal(t, []Type{TypeResponse}, seen)
}

// TestMsgpackRPCMaxSize checks the frame size limit against whole
// messages.
func TestMsgpackRPCMaxSize(t *testing.T) {
	msg := unhex(t, "94 00 01 a1 6d 91 a3 616263") // 10 bytes
	r := MsgpackRPC.NewReader(bytes.NewReader(msg), len(msg))
	var f Frame
	require.NoError(t, r.ReadFrame(&f))
	f.Release()
	r = MsgpackRPC.NewReader(bytes.NewReader(msg), len(msg)-1)
	err := r.ReadFrame(&f)
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Contains(t, err.Error(), "msgpack-rpc message of at least 10 bytes, limit is 9")
}

// TestMsgpackRPCAllocatesAsBytesArrive sends a message that claims a
// 16 MiB string and stops after a few bytes: the reader may not have
// allocated more than a small multiple of what arrived.
func TestMsgpackRPCAllocatesAsBytesArrive(t *testing.T) {
	head := unhex(t, "94 00 01 a1 6d 91 db00ffffff")
	data := append(head, bytes.Repeat([]byte("a"), 100<<10)...)
	drainLargePools()
	var before, at runtime.MemStats
	src := &stallReader{data: data, stalled: func() { runtime.ReadMemStats(&at) }}
	r := MsgpackRPC.NewReader(src, DefaultMaxFrameSize+64)
	var f Frame
	runtime.ReadMemStats(&before)
	err := r.ReadFrame(&f)
	require.ErrorIs(t, err, errStalled)
	allocated := at.TotalAlloc - before.TotalAlloc
	assert.Less(t, allocated, uint64(1<<20), "allocated %d bytes for %d received", allocated, len(data))
}

// TestMsgpackRPCPayloadsDecode checks that payloads read from the dialect
// decode with the package's checks, and that the wrapped params of a
// non-slice argument decode as a one-element array.
func TestMsgpackRPCPayloadsDecode(t *testing.T) {
	f, err := mrpcRead(t, mrpcWrite(t, payloadFrame(t, &Frame{Type: TypeRequest, XID: 1, Method: "m"}, map[string]int{"a": 1})))
	require.NoError(t, err)
	var args []map[string]int
	require.NoError(t, DecodePayload(f.Payload, &args))
	assert.Equal(t, []map[string]int{{"a": 1}}, args)

	// A bomb in the params: the payload checker refuses it on decoding.
	bomb := unhex(t, "94 00 01 a1 6d 91 dd 00010000")
	bomb = append(bomb, bytes.Repeat([]byte{0x90}, 1<<16)...)
	f, err = mrpcRead(t, bomb)
	require.NoError(t, err, "the envelope is well-formed")
	var v any
	assert.ErrorIs(t, DecodePayload(f.Payload, &v), ErrTooLarge, "64 Ki empty arrays cost too much to decode into an any")
	deep := unhex(t, "94 00 01 a1 6d")
	deep = append(deep, bytes.Repeat([]byte{0x91}, MaxPayloadDepth+1)...)
	deep = append(deep, 0xc0)
	f, err = mrpcRead(t, deep)
	require.NoError(t, err)
	assert.ErrorIs(t, DecodePayload(f.Payload, &v), ErrMalformed, "nested deeper than MaxPayloadDepth")
}

// TestAppendCompact checks that integers of every width come out in their
// shortest form with their value, and that everything else is copied.
func TestAppendCompact(t *testing.T) {
	values := []any{
		[]any{uint8(200), uint16(7), uint32(1 << 20), uint64(1 << 40), uint64(math.MaxUint64)},
		[]any{int8(-5), int16(-300), int32(-1 << 20), int64(-1 << 40), int64(math.MinInt64), int64(math.MaxInt64), int64(0)},
		map[string]any{"s": "str", "b": []byte{1, 2}, "f": 1.5, "n": nil, "t": true, "a": []any{int64(1), map[string]any{"x": uint32(3)}}},
	}
	for _, v := range values {
		wide, err := msgpack.Marshal(v)
		require.NoError(t, err)
		got, err := appendCompact(nil, wide)
		require.NoError(t, err)
		var want bytes.Buffer
		enc := msgpack.NewEncoder(&want)
		enc.UseCompactInts(true)
		enc.SetSortMapKeys(true)
		require.NoError(t, enc.Encode(v))
		var a, b any
		require.NoError(t, msgpack.Unmarshal(got, &a))
		require.NoError(t, msgpack.Unmarshal(want.Bytes(), &b))
		assert.Equal(t, b, a)
		assert.Equal(t, want.Len(), len(got), "%x", got)
	}
	_, err := appendCompact(nil, unhex(t, "92 01"))
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = appendCompact(nil, unhex(t, "01 02"))
	assert.ErrorIs(t, err, ErrMalformed)
}

// TestMsgpackRPCWritesRawPayloadAsIs checks that a payload that is not
// msgpack, which only a hand-made payload can be, is written unchanged
// rather than failing the stream.
func TestMsgpackRPCWritesRawPayloadAsIs(t *testing.T) {
	f := &Frame{Type: TypeResponse, XID: 1, Payload: []byte{0x92, 0x01}}
	assert.Equal(t, "940101c09201", hex.EncodeToString(mrpcWrite(t, f)))
}

// TestHasWideInts checks the scan that lets a large payload with nothing
// to rewrite be written straight from where it lies.
func TestHasWideInts(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"92 01 c4 02 6162", false},
		{"cc 80", false},       // uint8 128 is already shortest
		{"cc 05", true},        // 5 fits a fixint
		{"d0 80", false},       // int8 -128 is shortest
		{"d0 ff", true},        // -1 fits a negative fixint
		{"d1 ff80", true},      // int16 -128 fits an int8
		{"ce 00010000", false}, // 65536 needs 4 bytes
		{"91 d3 0000000000000001", true},
		{"92 01", true}, // not well-formed: appendCompact decides
	} {
		assert.Equal(t, tt.want, hasWideInts(unhex(t, tt.in)), tt.in)
	}
	// A large payload written straight: bytes unchanged, ints compacted
	// when it has any.
	big := bytes.Repeat([]byte{0xab}, 2*directWrite)
	f := payloadFrame(t, &Frame{Type: TypeResponse, XID: 1}, big)
	got := mrpcWrite(t, f)
	assert.True(t, bytes.Equal(append(unhex(t, "94 01 01 c0"), f.Payload...), got), "a large payload without integers is written unchanged")
	f = payloadFrame(t, &Frame{Type: TypeResponse, XID: 1}, []any{int64(1), big})
	got = mrpcWrite(t, f)
	head := unhex(t, "94 01 01 c0 92 01 c6 00010000")
	require.Equal(t, len(head)+len(big), len(got))
	assert.Equal(t, head, got[:len(head)], "int64(1) shortened")
	assert.True(t, bytes.Equal(big, got[len(head):]))
}
