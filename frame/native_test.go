package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// raw builds a frame by hand: the length field counts the type, flags, xid
// and body.
func raw(typ Type, flags Flags, xid uint64, body ...[]byte) []byte {
	n := MinFrameSize
	for _, b := range body {
		n += len(b)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(n))
	out = append(out, byte(typ), byte(flags))
	out = binary.BigEndian.AppendUint64(out, xid)
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// errorBody builds the body of an ERROR or GOAWAY frame.
func errorBody(code Code, msg, trace string) []byte {
	b := u16(uint16(code))
	b = append(b, u32(uint32(len(msg)))...)
	b = append(b, msg...)
	b = append(b, u32(uint32(len(trace)))...)
	return append(b, trace...)
}

// encode writes frames with Native and returns the bytes.
func encode(t testing.TB, frames ...*Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := Native.NewWriter(&buf)
	for _, f := range frames {
		require.NoError(t, w.WriteFrame(f), "WriteFrame(%v)", f)
	}
	require.NoError(t, w.Flush())
	return buf.Bytes()
}

// readOne decodes the single frame in b with the given limit.
func readOne(b []byte, max int) (*Frame, error) {
	r := Native.NewReader(bytes.NewReader(b), max)
	f := new(Frame)
	err := r.ReadFrame(f)
	return f, err
}

func roundTripFrames() []*Frame {
	return []*Frame{
		{Type: TypeRequest, XID: 1, Method: "m", Payload: []byte{0xc0}},
		{Type: TypeRequest, XID: math.MaxUint64, Method: "Service.Method", Payload: []byte{0x92, 0x01, 0xa1, 0x78}},
		{Type: TypeRequest, XID: 7, Method: "no.payload"},
		{Type: TypeRequest, Flags: FlagDeadline, XID: 2, Method: "slow", Budget: 3 * time.Second, Payload: []byte{0x01}},
		{Type: TypeRequest, Flags: FlagDeadline, XID: 3, Method: "late", Budget: -5 * time.Millisecond},
		{Type: TypeRequest, Flags: FlagDeadline | FlagPriorityMask, XID: 4, Method: "prio", Budget: math.MaxInt64},
		{Type: TypeRequest, XID: 5, Method: strings.Repeat("x", MaxMethodLen), Payload: bytes.Repeat([]byte{0xc0}, 1000)},
		{Type: TypeNotify, Method: "log", Payload: []byte{0xa2, 'h', 'i'}},
		{Type: TypeNotify, Flags: FlagDeadline, Method: "log", Budget: time.Minute},
		{Type: TypeNotify, Flags: 1 << 1, Method: "n"},
		{Type: TypeResponse, XID: 1, Payload: []byte{0x05}},
		{Type: TypeResponse, XID: 2},
		{Type: TypeResponse, Flags: 1 << 2, XID: 3, Payload: bytes.Repeat([]byte{0xc3}, 70000)},
		{Type: TypeError, XID: 9, Err: &RemoteError{Code: CodeApplication, Message: "boom"}},
		{Type: TypeError, XID: 9, Err: &RemoteError{Code: CodePanic, Message: "p", Trace: "goroutine 1\n"}},
		{Type: TypeError, XID: 9, Err: &RemoteError{Code: 0xffff}},
		{Type: TypeError, XID: 9, Err: &RemoteError{Code: CodeInternal, Message: strings.Repeat("m", MaxMessageLen), Trace: strings.Repeat("t", MaxMessageLen)}},
		{Type: TypeCancel, XID: 12},
		{Type: TypeCancel, Flags: FlagPriorityMask, XID: 12},
		{Type: TypeGoAway, Err: &RemoteError{Code: CodeShutdown, Message: "bye"}},
		{Type: TypePing},
		{Type: TypePing, XID: math.MaxUint64},
		{Type: TypePong, XID: 42},
		{Type: TypeChallenge, Payload: seq(1, NonceSize)},
		{Type: TypeChallenge, Payload: seq(0, maxNonceSize)},
		{Type: TypeProof, Payload: seq(7, proofSize)},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, want := range roundTripFrames() {
		b := encode(t, want)
		assert.Equal(t, len(b)-4, Native.FrameSize(want), "FrameSize(%v)", want)
		assert.Equal(t, uint32(len(b)-4), binary.BigEndian.Uint32(b), "length field of %v", want)
		got, err := readOne(b, 1<<20)
		require.NoError(t, err, "%v", want)
		assertSameFrame(t, want, got)
		got.Release()
	}
}

// TestRoundTripStream writes every frame into one stream, flushing once,
// and reads them back in order.
func TestRoundTripStream(t *testing.T) {
	frames := roundTripFrames()
	var buf bytes.Buffer
	w := Native.NewWriter(&buf)
	require.NoError(t, w.WritePreface())
	for _, f := range frames {
		require.NoError(t, w.WriteFrame(f))
	}
	require.NoError(t, w.Flush())

	// A reader that hands over one byte at a time exercises every partial
	// read.
	r := Native.NewReader(iotest.OneByteReader(&buf), 0)
	require.NoError(t, r.ReadPreface())
	for _, want := range frames {
		var got Frame
		require.NoError(t, r.ReadFrame(&got))
		assertSameFrame(t, want, &got)
		got.Release()
	}
	var f Frame
	assert.Equal(t, io.EOF, r.ReadFrame(&f))
}

func TestReadFrameOverwrites(t *testing.T) {
	b := encode(t,
		&Frame{Type: TypeRequest, Flags: FlagDeadline, XID: 1, Budget: time.Second, Method: "m", Payload: []byte{1}},
		&Frame{Type: TypeCancel, XID: 1},
	)
	r := Native.NewReader(bytes.NewReader(b), 0)
	var f Frame
	require.NoError(t, r.ReadFrame(&f))
	require.NoError(t, r.ReadFrame(&f))
	assertSameFrame(t, &Frame{Type: TypeCancel, XID: 1}, &f)
}

// A GOAWAY or ERROR written without an Err goes out with code 0 and empty
// strings, which the reader gives back as such.
func TestWriteNilErr(t *testing.T) {
	for _, typ := range []Type{TypeError, TypeGoAway} {
		want := &Frame{Type: typ}
		if typ == TypeError {
			want.XID = 1
		}
		b := encode(t, want)
		assert.Equal(t, raw(typ, 0, want.XID, errorBody(0, "", "")), b)
		got, err := readOne(b, 0)
		require.NoError(t, err)
		assert.Equal(t, &RemoteError{}, got.Err)
	}
}

func TestWriteCutsLongMessages(t *testing.T) {
	long := strings.Repeat("a", MaxMessageLen) + "tail"
	f := &Frame{Type: TypeError, XID: 1, Err: &RemoteError{Code: CodeApplication, Message: long, Trace: long + long}}
	b := encode(t, f)
	assert.Equal(t, len(b)-4, Native.FrameSize(f))
	got, err := readOne(b, 0)
	require.NoError(t, err)
	assert.Equal(t, long[:MaxMessageLen], got.Err.Message)
	assert.Equal(t, long[:MaxMessageLen], got.Err.Trace)
	assert.Len(t, f.Err.Message, MaxMessageLen+4, "the frame's own error is left alone")
}

func TestWriteBadMethod(t *testing.T) {
	for _, method := range []string{"", strings.Repeat("x", MaxMethodLen+1)} {
		for _, typ := range []Type{TypeRequest, TypeNotify} {
			var buf bytes.Buffer
			w := Native.NewWriter(&buf)
			err := w.WriteFrame(&Frame{Type: typ, XID: 1, Method: method})
			assert.ErrorIs(t, err, ErrMalformed, "%v with a %d-byte method", typ, len(method))
			require.NoError(t, w.Flush())
			assert.Zero(t, buf.Len(), "nothing is written for a rejected frame")
		}
	}
}

// A RESPONSE has no method; a CANCEL's payload, if any, is not written.
func TestWriteIgnoresFieldsOfOtherTypes(t *testing.T) {
	assert.Equal(t, raw(TypeResponse, 0, 1, []byte{7}),
		encode(t, &Frame{Type: TypeResponse, XID: 1, Method: "ignored", Payload: []byte{7}}))
	f := &Frame{Type: TypeCancel, XID: 1, Payload: []byte{7}, Budget: time.Second}
	assert.Equal(t, raw(TypeCancel, 0, 1), encode(t, f))
	assert.Equal(t, MinFrameSize, Native.FrameSize(f))
}

type failWriter struct{ err error }

func (w failWriter) Write(p []byte) (int, error) { return 0, w.err }

func TestWriteError(t *testing.T) {
	errBroken := errors.New("broken pipe")
	w := Native.NewWriter(failWriter{errBroken})
	require.NoError(t, w.WritePreface(), "buffered")
	require.NoError(t, w.WriteFrame(&Frame{Type: TypeCancel, XID: 1}), "buffered")
	assert.ErrorIs(t, w.Flush(), errBroken)
}

// TestReadFrameRejects lists every way a frame can be malformed.
func TestReadFrameRejects(t *testing.T) {
	req := func(flags Flags, xid uint64, body ...[]byte) []byte { return raw(TypeRequest, flags, xid, body...) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"length 0", u32(0), ErrMalformed},
		{"length 9", append(u32(9), make([]byte, 9)...), ErrMalformed},
		{"length above the limit", append(u32(1<<16+1), make([]byte, 1<<16+1)...), ErrTooLarge},
		{"length 2^32-1", u32(math.MaxUint32), ErrTooLarge},

		{"type 0", raw(0, 0, 1), ErrMalformed},
		{"type 16", raw(16, 0, 1), ErrMalformed},
		{"WANT granting 0", raw(TypeWant, 0, 1, u32(0)), ErrMalformed},
		{"TAKE with a short body", raw(TypeTake, 0, 1, u16(1)), ErrMalformed},
		{"CLOSE with a body", raw(TypeClose, 0, 1, []byte{1}), ErrMalformed},
		{"YIELD with xid 0", raw(TypeYield, 0, 0, []byte{1}), ErrMalformed},
		{"NOTIFY with FlagStream", raw(TypeNotify, FlagStream, 0, u32(1), u16(1), []byte("m")), ErrMalformed},
		{"RESPONSE with FlagKey", raw(TypeResponse, FlagKey, 1, []byte{1}), ErrMalformed},
		{"REQUEST with an empty key", req(FlagKey, 1, []byte{0}, u16(1), []byte("m")), ErrMalformed},
		{"REQUEST with a key past the body", req(FlagKey, 1, []byte{9, 'k'}, u16(1), []byte("m")), ErrMalformed},
		{"a later chunk with FlagDeadline", append(req(FlagMore, 1, u32(3), u16(1)), req(FlagDeadline, 1, []byte("m"))...), ErrMalformed},
		{"a first chunk too short for its length", raw(TypeResponse, FlagMore, 1, u16(0)), ErrMalformed},
		{"a first chunk longer than its length says", raw(TypeResponse, FlagMore, 1, u32(1), []byte{0xa1, 'a'}), ErrMalformed},
		{"chunks longer than the first one says", append(raw(TypeResponse, FlagMore, 1, u32(2), []byte{0xa1}), raw(TypeResponse, 0, 1, []byte("ab"))...), ErrMalformed},
		{"chunks shorter than the first one says", append(raw(TypeResponse, FlagMore, 1, u32(3), []byte{0xa2}), raw(TypeResponse, 0, 1, []byte("a"))...), ErrMalformed},
		{"type 255", raw(255, 0, 1), ErrMalformed},

		{"REQUEST with flag 0x08", req(0x08, 1, u16(1), []byte("m")), ErrMalformed},
		{"REQUEST with flag 0x40", req(0x40, 1, u16(1), []byte("m")), ErrMalformed},
		{"RESPONSE with FlagDeadline", raw(TypeResponse, FlagDeadline, 1, u64(1)), ErrMalformed},
		{"ERROR with FlagDeadline", raw(TypeError, FlagDeadline, 1, errorBody(1, "", "")), ErrMalformed},
		{"CANCEL with FlagDeadline", raw(TypeCancel, FlagDeadline, 1), ErrMalformed},
		{"CANCEL with flag 0x10", raw(TypeCancel, 0x10, 1), ErrMalformed},
		{"GOAWAY with FlagMore", raw(TypeGoAway, FlagMore, 0, errorBody(8, "", "")), ErrMalformed},
		{"PING with priority bits", raw(TypePing, 1<<1, 1), ErrMalformed},
		{"PONG with FlagDeadline", raw(TypePong, FlagDeadline, 1), ErrMalformed},
		{"CHALLENGE with priority bits", raw(TypeChallenge, 1<<2, 0, seq(0, NonceSize)), ErrMalformed},
		{"PROOF with FlagMore", raw(TypeProof, FlagMore, 0, seq(0, proofSize)), ErrMalformed},

		{"REQUEST with xid 0", req(0, 0, u16(1), []byte("m")), ErrMalformed},
		{"RESPONSE with xid 0", raw(TypeResponse, 0, 0), ErrMalformed},
		{"ERROR with xid 0", raw(TypeError, 0, 0, errorBody(1, "", "")), ErrMalformed},
		{"CANCEL with xid 0", raw(TypeCancel, 0, 0), ErrMalformed},
		{"NOTIFY with xid 1", raw(TypeNotify, 0, 1, u16(1), []byte("m")), ErrMalformed},
		{"GOAWAY with xid 1", raw(TypeGoAway, 0, 1, errorBody(8, "", "")), ErrMalformed},
		{"CHALLENGE with xid 1", raw(TypeChallenge, 0, 1, seq(0, NonceSize)), ErrMalformed},
		{"PROOF with xid 1", raw(TypeProof, 0, 1, seq(0, proofSize)), ErrMalformed},

		{"CANCEL with a body", raw(TypeCancel, 0, 1, []byte{0}), ErrMalformed},
		{"PING with a body", raw(TypePing, 0, 1, []byte{0}), ErrMalformed},
		{"PONG with a body", raw(TypePong, 0, 1, seq(0, 8)), ErrMalformed},
		{"CHALLENGE without a nonce", raw(TypeChallenge, 0, 0), ErrMalformed},
		{"CHALLENGE with a 31-byte nonce", raw(TypeChallenge, 0, 0, seq(0, NonceSize-1)), ErrMalformed},
		{"CHALLENGE with a 256-byte nonce", raw(TypeChallenge, 0, 0, seq(0, maxNonceSize+1)), ErrMalformed},
		{"PROOF of 31 bytes", raw(TypeProof, 0, 0, seq(0, proofSize-1)), ErrMalformed},
		{"PROOF of 33 bytes", raw(TypeProof, 0, 0, seq(0, proofSize+1)), ErrMalformed},
		{"PROOF without a body", raw(TypeProof, 0, 0), ErrMalformed},

		{"REQUEST without a method length", req(0, 1), ErrMalformed},
		{"REQUEST with half a method length", req(0, 1, []byte{0}), ErrMalformed},
		{"REQUEST with a deadline but no method length", req(FlagDeadline, 1, u64(1)), ErrMalformed},
		{"REQUEST with half a budget", req(FlagDeadline, 1, u32(1), u16(1), []byte("m")[:0]), ErrMalformed},
		{"REQUEST with method length 0", req(0, 1, u16(0), []byte{0xc0}), ErrMalformed},
		{"NOTIFY with method length 0", raw(TypeNotify, 0, 0, u16(0)), ErrMalformed},
		{"REQUEST with method past the body", req(0, 1, u16(5), []byte("abcd")), ErrMalformed},
		{"REQUEST with deadline and method past the body", req(FlagDeadline, 1, u64(1), u16(2), []byte("a")), ErrMalformed},
		{"REQUEST with method length 65535 and a short body", req(0, 1, u16(0xffff), []byte("a")), ErrMalformed},

		{"ERROR with an empty body", raw(TypeError, 0, 1), ErrMalformed},
		{"ERROR with only a code", raw(TypeError, 0, 1, u16(1)), ErrMalformed},
		{"ERROR with half a message length", raw(TypeError, 0, 1, u16(1), []byte{0, 0}), ErrMalformed},
		{"ERROR with message past the body", raw(TypeError, 0, 1, u16(1), u32(10), []byte("short"), u32(0)), ErrMalformed},
		{"ERROR with message length 2^32-1", raw(TypeError, 0, 1, u16(1), u32(math.MaxUint32), u32(0)), ErrMalformed},
		{"ERROR without a trace length", raw(TypeError, 0, 1, u16(1), u32(2), []byte("hi")), ErrMalformed},
		{"ERROR with half a trace length", raw(TypeError, 0, 1, u16(1), u32(2), []byte("hi"), []byte{0, 0}), ErrMalformed},
		{"ERROR with trace past the body", raw(TypeError, 0, 1, u16(1), u32(0), u32(3), []byte("ab")), ErrMalformed},
		{"ERROR with bytes after the trace", raw(TypeError, 0, 1, errorBody(1, "a", "b"), []byte{0}), ErrMalformed},
		{"GOAWAY with an empty body", raw(TypeGoAway, 0, 0), ErrMalformed},
		{"GOAWAY with bytes after the trace", raw(TypeGoAway, 0, 0, errorBody(8, "", ""), []byte{0}), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := readOne(c.in, 1<<16)
			require.Error(t, err)
			assert.ErrorIs(t, err, c.want)
			assert.NotErrorIs(t, err, io.ErrUnexpectedEOF, "the frame is complete")
			if c.want == ErrTooLarge {
				assert.NotErrorIs(t, err, ErrMalformed)
			} else {
				assert.NotErrorIs(t, err, ErrTooLarge)
			}
			assert.Nil(t, f.Payload, "no payload is handed out with an error")
		})
	}
}

// TestReadFrameAccepts shows the edges of what is valid.
func TestReadFrameAccepts(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want Frame
	}{
		{"priority bits on every type", raw(TypeCancel, FlagPriorityMask, 1), Frame{Type: TypeCancel, Flags: FlagPriorityMask, XID: 1}},
		{"method filling the body", raw(TypeRequest, 0, 1, u16(2), []byte("ab")), Frame{Type: TypeRequest, XID: 1, Method: "ab"}},
		{"method that is not UTF-8", raw(TypeNotify, 0, 0, u16(1), []byte{0xff}), Frame{Type: TypeNotify, Method: "\xff"}},
		{"negative budget", raw(TypeRequest, FlagDeadline, 1, u64(math.MaxUint64), u16(1), []byte("m")),
			Frame{Type: TypeRequest, Flags: FlagDeadline, XID: 1, Budget: -1, Method: "m"}},
		{"zero budget", raw(TypeRequest, FlagDeadline, 1, u64(0), u16(1), []byte("m")),
			Frame{Type: TypeRequest, Flags: FlagDeadline, XID: 1, Method: "m"}},
		{"payload that is not msgpack", raw(TypeResponse, 0, 1, []byte{0xc1, 0xc1}), Frame{Type: TypeResponse, XID: 1, Payload: []byte{0xc1, 0xc1}}},
		{"unknown error code", raw(TypeError, 0, 1, errorBody(1000, "x", "")), Frame{Type: TypeError, XID: 1, Err: &RemoteError{Code: 1000, Message: "x"}}},
		{"error code 0", raw(TypeError, 0, 1, errorBody(0, "", "")), Frame{Type: TypeError, XID: 1, Err: &RemoteError{}}},
		{"PING with xid 0", raw(TypePing, 0, 0), Frame{Type: TypePing}},
		{"PONG with any xid", raw(TypePong, 0, math.MaxUint64), Frame{Type: TypePong, XID: math.MaxUint64}},
		{"CHALLENGE with a 255-byte nonce", raw(TypeChallenge, 0, 0, seq(0, maxNonceSize)), Frame{Type: TypeChallenge, Payload: seq(0, maxNonceSize)}},
		{"CHALLENGE with nonce of zeros", raw(TypeChallenge, 0, 0, make([]byte, NonceSize)), Frame{Type: TypeChallenge, Payload: make([]byte, NonceSize)}},
		{"frame of exactly the limit", raw(TypeResponse, 0, 1, make([]byte, 512-MinFrameSize)), Frame{Type: TypeResponse, XID: 1, Payload: make([]byte, 512-MinFrameSize)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := readOne(c.in, 512)
			require.NoError(t, err)
			assertSameFrame(t, &c.want, got)
		})
	}
	_, err := readOne(raw(TypeResponse, 0, 1, make([]byte, 512-MinFrameSize+1)), 512)
	assert.ErrorIs(t, err, ErrTooLarge, "one byte above the limit")
}

func TestReadFrameDefaultLimit(t *testing.T) {
	for _, max := range []int{0, -1} {
		_, err := readOne(u32(DefaultMaxFrameSize+1), max)
		assert.ErrorIs(t, err, ErrTooLarge, "max %d", max)
		_, err = readOne(u32(DefaultMaxFrameSize), max)
		assert.Equal(t, io.ErrUnexpectedEOF, err, "max %d: a frame of exactly 16 MiB is read", max)
	}
}

// lengthOnly returns a 4-byte length field and fails the test if anything
// reads past it, showing that the reader judges the length before reading
// or allocating for the rest.
type lengthOnly struct {
	t    testing.TB
	hdr  []byte
	done bool
}

func (r *lengthOnly) Read(p []byte) (int, error) {
	if r.done {
		r.t.Error("the reader read past the length field")
		return 0, errors.New("read past the length field")
	}
	r.done = true
	return copy(p, r.hdr), nil
}

func TestReadFrameTooLargeBeforeAllocating(t *testing.T) {
	for _, n := range []uint32{1<<16 + 1, DefaultMaxFrameSize + 1, math.MaxUint32} {
		r := Native.NewReader(&lengthOnly{t: t, hdr: u32(n)}, 1<<16)
		var f Frame
		var err error
		allocated := bytesAllocated(func() { err = r.ReadFrame(&f) })
		assert.ErrorIs(t, err, ErrTooLarge, "length %d", n)
		// Far below the 64 KiB the smallest of these lengths claims; the
		// margin absorbs the race detector's own allocations.
		assert.Less(t, allocated, uint64(16<<10), "bytes allocated rejecting length %d", n)
	}
}

// repeatReader is an endless stream that repeats b.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

func TestReadFrameTooLargeAllocs(t *testing.T) {
	r := Native.NewReader(&repeatReader{b: u32(math.MaxUint32)}, 0)
	var f Frame
	allocs := testing.AllocsPerRun(100, func() {
		if err := r.ReadFrame(&f); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("ReadFrame: %v", err)
		}
	})
	assert.LessOrEqual(t, allocs, 5.0, "allocations per rejected frame: only the error")
}

// bytesAllocated reports how many bytes the heap grew by while fn ran.
func bytesAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestReadFrameTruncated cuts every golden frame at every byte: a stream
// that ends before the length field is complete, or after it but before
// the frame is, gives io.ErrUnexpectedEOF; an empty stream io.EOF.
func TestReadFrameTruncated(t *testing.T) {
	_, err := readOne(nil, 0)
	assert.Equal(t, io.EOF, err)
	for name := range goldenFrames {
		b := readGolden(t, name)
		for cut := 1; cut < len(b); cut++ {
			_, err := readOne(b[:cut], 0)
			assert.Equal(t, io.ErrUnexpectedEOF, err, "%s cut after %d bytes", name, cut)
		}
	}
}

// TestReadFrameIOError passes a transport error through unchanged, at
// every point in a frame.
func TestReadFrameIOError(t *testing.T) {
	errReset := errors.New("connection reset")
	for name := range goldenFrames {
		b := readGolden(t, name)
		for cut := 0; cut < len(b); cut++ {
			r := Native.NewReader(io.MultiReader(bytes.NewReader(b[:cut]), iotest.ErrReader(errReset)), 0)
			var f Frame
			err := r.ReadFrame(&f)
			assert.ErrorIs(t, err, errReset, "%s, error after %d bytes", name, cut)
			assert.Nil(t, f.Payload)
		}
	}
}

// TestReadFrameMethodInterned checks that a method name seen before is
// handed out without a new allocation, and that the table is bounded.
func TestReadFrameMethodInterned(t *testing.T) {
	var frames []*Frame
	for i := range maxInterned + 10 {
		frames = append(frames, &Frame{Type: TypeNotify, Method: strings.Repeat("m", i+1)})
	}
	frames = append(frames, frames...)
	r := Native.NewReader(bytes.NewReader(encode(t, frames...)), 0)
	for _, want := range frames {
		var got Frame
		require.NoError(t, r.ReadFrame(&got))
		require.Equal(t, want.Method, got.Method)
	}
	assert.Len(t, r.(*nativeReader).methods, maxInterned)
}

func TestReadFrameAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers")
	}
	req := encode(t, &Frame{Type: TypeRequest, Flags: FlagDeadline, XID: 1, Budget: time.Second, Method: "Arith.Add", Payload: []byte{0x92, 1, 2}})
	r := Native.NewReader(&repeatReader{b: req}, 0)
	var f Frame
	allocs := testing.AllocsPerRun(1000, func() {
		if err := r.ReadFrame(&f); err != nil {
			t.Fatal(err)
		}
		f.Release()
	})
	assert.Zero(t, allocs, "allocations per REQUEST read")

	var buf bytes.Buffer
	w := Native.NewWriter(&buf)
	resp := &Frame{Type: TypeResponse, XID: 1, Payload: []byte{5}}
	allocs = testing.AllocsPerRun(1000, func() {
		buf.Reset()
		if err := w.WriteFrame(resp); err != nil {
			t.Fatal(err)
		}
		w.Flush()
	})
	assert.Zero(t, allocs, "allocations per RESPONSE written")
}

func TestReadPreface(t *testing.T) {
	ok := func(rest string) []byte { return append(Preface[:], rest...) }
	t.Run("good", func(t *testing.T) {
		r := Native.NewReader(bytes.NewReader(append(ok(""), raw(TypeCancel, 0, 1)...)), 0)
		require.NoError(t, r.ReadPreface())
		var f Frame
		require.NoError(t, r.ReadFrame(&f), "the preface is consumed")
		assert.Equal(t, TypeCancel, f.Type)
	})
	t.Run("one byte at a time", func(t *testing.T) {
		r := Native.NewReader(iotest.OneByteReader(bytes.NewReader(ok(""))), 0)
		require.NoError(t, r.ReadPreface())
	})
	cases := []struct {
		name, in string
		want     error
		says     string
	}{
		{"HTTP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", ErrBadPreface, "looks like HTTP"},
		{"HTTP POST", "POST /rpc HTTP/1.1\r\n", ErrBadPreface, "looks like HTTP"},
		{"HTTP response", "HTTP/1.1 400 Bad Request\r\n", ErrBadPreface, "looks like HTTP"},
		{"HTTP/2", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", ErrBadPreface, "looks like HTTP/2"},
		{"SSH", "SSH-2.0-OpenSSH_9.6\r\n", ErrBadPreface, "looks like SSH"},
		{"TLS", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ErrBadPreface, "looks like TLS"},
		{"garbage", "\x00\x00\x00\x0a\x05\x00\x00\x00\x00", ErrBadPreface, `it opened with "\x00\x00`},
		{"wrong magic, right version", "muxrpd\x00\x01", ErrBadPreface, "muxrpd"},
		{"magic without its zero", "muxrpc\x01\x01", ErrBadPreface, "muxrpc"},
		{"version 0", "muxrpc\x00\x00", ErrVersion, "version 0"},
		{"version 1", "muxrpc\x00\x01frames", ErrVersion, "version 1, this side 2"},
		{"version 3", "muxrpc\x00\x03", ErrVersion, "version 3"},
		{"version 255", "muxrpc\x00\xff", ErrVersion, "version 255"},
		{"short stream", "muxrp", ErrBadPreface, `stream ended after "muxrp"`},
		{"one byte", "m", ErrBadPreface, "stream ended"},
		{"magic but no version", "muxrpc\x00", ErrBadPreface, "stream ended"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Native.NewReader(strings.NewReader(c.in), 0)
			err := r.ReadPreface()
			require.Error(t, err)
			assert.ErrorIs(t, err, c.want)
			if c.want == ErrVersion {
				assert.NotErrorIs(t, err, ErrBadPreface)
			} else {
				assert.NotErrorIs(t, err, ErrVersion)
			}
			assert.Contains(t, err.Error(), c.says)
		})
	}
	t.Run("empty stream", func(t *testing.T) {
		err := Native.NewReader(strings.NewReader(""), 0).ReadPreface()
		assert.Equal(t, io.EOF, err)
	})
	t.Run("I/O error", func(t *testing.T) {
		errReset := errors.New("connection reset")
		r := Native.NewReader(io.MultiReader(strings.NewReader("mux"), iotest.ErrReader(errReset)), 0)
		assert.ErrorIs(t, r.ReadPreface(), errReset)
	})
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{
		TypeRequest:   "REQUEST",
		TypeNotify:    "NOTIFY",
		TypeResponse:  "RESPONSE",
		TypeError:     "ERROR",
		TypeCancel:    "CANCEL",
		TypeGoAway:    "GOAWAY",
		TypePing:      "PING",
		TypePong:      "PONG",
		TypeChallenge: "CHALLENGE",
		TypeProof:     "PROOF",
		0:             "Type(0)",
		11:            "YIELD",
		12:            "PUSH",
		13:            "CLOSE",
		14:            "WANT",
		15:            "TAKE",
		16:            "Type(16)",
		255:           "Type(255)",
	} {
		assert.Equal(t, want, typ.String())
	}
}

func TestFrameString(t *testing.T) {
	f := &Frame{Type: TypeRequest, Flags: FlagDeadline, XID: 3, Method: "a.b", Budget: time.Second, Payload: []byte{1, 2}}
	assert.Equal(t, `REQUEST xid=3 method="a.b" budget=1s payload=2B`, f.String())
	f = &Frame{Type: TypeError, XID: 4, Err: &RemoteError{Code: CodeNoMethod, Message: "no"}}
	assert.Equal(t, `ERROR xid=4 err="remote: NoMethod: no" payload=0B`, f.String())
	assert.Equal(t, `PING xid=7`, (&Frame{Type: TypePing, XID: 7}).String())
	assert.Equal(t, `PONG xid=7`, (&Frame{Type: TypePong, XID: 7}).String())
	assert.Equal(t, `CHALLENGE xid=0 nonce=32B`, (&Frame{Type: TypeChallenge, Payload: seq(0, NonceSize)}).String())
	assert.Equal(t, `PROOF xid=0 proof=32B`, (&Frame{Type: TypeProof, Payload: seq(0, proofSize)}).String())
}

// TestWriteAuthBodies checks that the writer refuses a CHALLENGE or PROOF
// the reader would reject for its length, and writes nothing for it.
func TestWriteAuthBodies(t *testing.T) {
	for _, f := range []*Frame{
		{Type: TypeChallenge},
		{Type: TypeChallenge, Payload: seq(0, NonceSize-1)},
		{Type: TypeChallenge, Payload: seq(0, maxNonceSize+1)},
		{Type: TypeProof, Payload: seq(0, proofSize-1)},
		{Type: TypeProof, Payload: seq(0, proofSize+1)},
	} {
		var buf bytes.Buffer
		w := Native.NewWriter(&buf)
		assert.ErrorIs(t, w.WriteFrame(f), ErrMalformed, "%v", f)
		require.NoError(t, w.Flush())
		assert.Zero(t, buf.Len())
	}
}

func TestFrameRelease(t *testing.T) {
	var f Frame
	require.NoError(t, f.EncodePayload("x"))
	require.NotNil(t, f.buf)
	f.Release()
	assert.Nil(t, f.Payload)
	assert.Nil(t, f.buf)
	f.Release() // a second Release does nothing

	g := Frame{Payload: []byte{1}} // not pooled
	g.Release()
	assert.Nil(t, g.Payload)
}

// TestWriteFrameLengthOverflow checks that a frame whose length does not
// fit the 32-bit length field is refused rather than sent with a wrapped
// length. The payload is a 4 GiB slice header over a few real bytes: the
// writer must refuse it from its length alone, before touching its bytes.
func TestWriteFrameLengthOverflow(t *testing.T) {
	if raceEnabled {
		t.Skip("checkptr, on with the race detector, forbids the oversized slice")
	}
	if math.MaxInt == math.MaxInt32 {
		t.Skip("a 4 GiB slice needs a 64-bit int")
	}
	// maxLength is a variable so that 32-bit builds compile; huge is never
	// read.
	maxLength := uint64(math.MaxUint32)
	var backing [8]byte
	huge := unsafe.Slice(&backing[0], maxLength+1-MinFrameSize)
	var buf bytes.Buffer
	w := Native.NewWriter(&buf)
	err := w.WriteFrame(&Frame{Type: TypeResponse, XID: 1, Payload: huge})
	assert.ErrorIs(t, err, ErrTooLarge)
	require.NoError(t, w.Flush())
	assert.Zero(t, buf.Len())

	// One byte less fits; FrameSize says so. (It is not written: that
	// would read the fake payload.)
	assert.Equal(t, int(maxLength), Native.FrameSize(&Frame{Type: TypeResponse, XID: 1, Payload: huge[:len(huge)-1]}))
}

// TestReadFrameSplitLimits checks what a receiver of split messages
// refuses: a stream that ends inside one, more than MaxPartial at once,
// and one whose pieces add up to more than the frame size limit.
func TestReadFrameSplitLimits(t *testing.T) {
	_, err := readOne(raw(TypeRequest, FlagMore, 1, u32(3), u16(1)), 1<<16)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "the stream ended inside a split message")

	var many []byte
	for xid := uint64(1); xid <= MaxPartial+1; xid++ {
		many = append(many, raw(TypeResponse, FlagMore, xid, u32(2), []byte{0xc0})...)
	}
	_, err = readOne(many, 1<<16)
	assert.ErrorIs(t, err, ErrMalformed, "one split message more than MaxPartial")

	big := append(raw(TypeResponse, FlagMore, 1, u32(1200), make([]byte, 600)), raw(TypeResponse, 0, 1, make([]byte, 600))...)
	_, err = readOne(big, 1000)
	assert.ErrorIs(t, err, ErrTooLarge, "a message of 1200 bytes under a limit of 1000")
	_, err = readOne(raw(TypeResponse, FlagMore, 1, u32(math32), []byte{0xc0}), 1<<16)
	assert.ErrorIs(t, err, ErrTooLarge, "a first chunk claiming 4 GiB: refused before anything is held for it")
	f, err := readOne(big, 1210)
	require.NoError(t, err, "the joined message fits a limit of 1210")
	assert.Len(t, f.Payload, 1200)
	f.Release()
}

// TestWriteChunkRoundTrip splits frames of every splittable type at
// several sizes, interleaves the pieces of two messages, and checks that
// the reader joins each back into the frame that was split.
func TestWriteChunkRoundTrip(t *testing.T) {
	payload := bytes.Repeat([]byte{0xc3}, 1000) // 1000 msgpack trues
	frames := []Frame{
		{Type: TypeRequest, Flags: FlagDeadline | FlagKey | FlagStream, XID: 1, Budget: time.Second, Window: 3, Key: "k", Method: "M.m", Payload: payload},
		{Type: TypeNotify, Flags: FlagKey, Key: "kk", Method: "note", Payload: payload[:10]},
		{Type: TypeResponse, Flags: Flags(0).WithPriority(PriorityUrgent), XID: 2, Payload: payload},
		{Type: TypeYield, XID: 3, Payload: payload[:1]},
		{Type: TypePush, XID: 4},
	}
	for _, size := range []int{1, 7, 64, 4096} {
		for i := range frames {
			a, b := frames[i], frames[(i+1)%len(frames)]
			var buf bytes.Buffer
			w := Native.NewWriter(&buf).(ChunkWriter)
			offA, offB := -1, -1 // -1: not started
			bodyA, bodyB := Native.FrameSize(&a)-MinFrameSize, Native.FrameSize(&b)-MinFrameSize
			for offA < bodyA || offB < bodyB {
				var err error
				if offA < bodyA {
					offA, err = w.WriteChunk(&a, max(offA, 0), size)
					require.NoError(t, err)
				}
				if offB < bodyB {
					offB, err = w.WriteChunk(&b, max(offB, 0), size)
					require.NoError(t, err)
				}
			}
			require.NoError(t, w.(Writer).Flush())
			r := Native.NewReader(&buf, 1<<16)
			got := map[Type]Frame{}
			for range 2 {
				var f Frame
				require.NoError(t, r.ReadFrame(&f), "size %d, %v and %v", size, a.Type, b.Type)
				got[f.Type] = visible(&f)
			}
			assert.Equal(t, visible(&a), got[a.Type], "size %d", size)
			assert.Equal(t, visible(&b), got[b.Type], "size %d", size)
		}
	}
}
