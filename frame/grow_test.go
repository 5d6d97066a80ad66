package frame

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stallReader hands out data, then, on the next Read, where a real stream
// would block, calls stalled and returns errStalled.
type stallReader struct {
	data    []byte
	stalled func()
}

var errStalled = errors.New("stream stalled")

func (r *stallReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.stalled()
		return 0, errStalled
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// drainLargePools empties the pools' classes from 64 KiB up, so that every
// large buffer the reader takes while the test measures is a new
// allocation the heap statistics count.
func drainLargePools() {
	for k := 16; k <= maxBufferClass; k++ {
		drainPool(k)
	}
}

// allocatedUntilStall returns how many bytes the heap grew by from the
// start of ReadFrame until the reader asked the stream for bytes that had
// not arrived.
func allocatedUntilStall(t *testing.T, data []byte) uint64 {
	t.Helper()
	drainLargePools()
	var before, at runtime.MemStats
	src := &stallReader{data: data, stalled: func() { runtime.ReadMemStats(&at) }}
	r := Native.NewReader(src, DefaultMaxFrameSize)
	var f Frame
	runtime.ReadMemStats(&before)
	err := r.ReadFrame(&f)
	require.ErrorIs(t, err, errStalled)
	require.Nil(t, f.Payload)
	return at.TotalAlloc - before.TotalAlloc
}

// TestReadFrameAllocatesAsBytesArrive sends the header of a 16 MiB frame
// and only part of its body: what the reader allocates follows what has
// arrived, not what the length field claims.
func TestReadFrameAllocatesAsBytesArrive(t *testing.T) {
	const claimed = DefaultMaxFrameSize
	header := func(typ Type, xid uint64) []byte {
		return append(u32(claimed), raw(typ, 0, xid)[4:]...)
	}
	request := header(TypeRequest, 1)
	request = append(request, u16(8)...)
	request = append(request, "Big.Call"...) // 10 bytes of body
	cases := []struct {
		name string
		data []byte
	}{
		{"REQUEST, 10 bytes of body", request},
		{"REQUEST, 64 KiB of payload", append(bytes.Clone(request), make([]byte, 64<<10)...)},
		{"REQUEST, 1 MiB of payload", append(bytes.Clone(request), make([]byte, 1<<20)...)},
		{"REQUEST, 3 MiB + 1 of payload", append(bytes.Clone(request), make([]byte, 3<<20+1)...)},
		{"REQUEST with a 65535-byte method, 10 bytes of body", append(header(TypeRequest, 1), append(u16(0xffff), "Big.Call"...)...)},
		{"RESPONSE, 10 bytes of body", append(header(TypeResponse, 1), make([]byte, 10)...)},
		{"ERROR, 10 bytes of body", append(header(TypeError, 1), errorBody(1, "", "")...)},
		{"GOAWAY, 1 MiB of body", append(header(TypeGoAway, 0), make([]byte, 1<<20)...)},
		{"split RESPONSE, first chunk claiming the limit, 10 bytes of it", splitClaiming(claimed, 0, 10)},
		{"split RESPONSE, 1 MiB in 16 KiB chunks, then a chunk claiming the rest", splitClaiming(claimed, 1<<20, 0)},
		{"split RESPONSE, 3 MiB + 1 in 16 KiB chunks, then 10 bytes of a chunk claiming the rest", splitClaiming(claimed, 3<<20+1, 10)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			arrived := len(c.data) - HeaderSize
			got := allocatedUntilStall(t, c.data)
			t.Logf("%d bytes arrived, %d allocated", arrived, got)
			// Every buffer taken so far, the ones given back on growing
			// included, comes to at most 4/3 of the last, which is at most
			// four times what has arrived, or 64 KiB; the slack covers a
			// 64 KiB method name and the race detector's own allocations.
			limit := uint64(max(6*arrived, bodyStep) + 80<<10)
			assert.LessOrEqual(t, got, limit, "bytes allocated with %d of %d bytes arrived", arrived, claimed)
			if arrived <= 64<<10 {
				assert.Less(t, got, uint64(128<<10), "bytes allocated with %d bytes arrived", arrived)
			}
		})
	}
}

// TestReadFrameGrowingBody reads large frames whose bodies arrive in
// pieces of awkward sizes: the growing buffer must put every byte where
// it belongs.
func TestReadFrameGrowingBody(t *testing.T) {
	frames := []*Frame{
		{Type: TypeResponse, XID: 1, Payload: pattern(bodyStep + 1)},
		{Type: TypeRequest, XID: 2, Method: "m", Payload: pattern(3*bodyStep + 5)},
		{Type: TypeResponse, XID: 3, Payload: pattern(1<<20 + 7)},
		{Type: TypeError, XID: 4, Err: &RemoteError{Code: CodeApplication, Message: string(pattern(MaxMessageLen)), Trace: string(pattern(100))}},
		{Type: TypeResponse, XID: 5, Payload: pattern(100)},
	}
	stream := encode(t, frames...)
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole":     func(r io.Reader) io.Reader { return r },
		"one byte":  iotest.OneByteReader,
		"half":      iotest.HalfReader,
		"4093 each": func(r io.Reader) io.Reader { return &chunkReader{b: stream, chunk: 4093} },
	} {
		t.Run(name, func(t *testing.T) {
			r := Native.NewReader(wrap(bytes.NewReader(stream)), 0)
			for _, want := range frames {
				var got Frame
				require.NoError(t, r.ReadFrame(&got))
				assertSameFrame(t, want, &got)
				got.Release()
			}
		})
	}
}

// splitClaiming returns the start of a split RESPONSE whose first chunk
// says its body is the most a frame of size limit holds: whole chunks
// of 16 KiB (the first one shorter by its length field) until sent bytes
// of the body have gone, then the header of a chunk claiming the rest of
// the body and partial bytes of it.
func splitClaiming(limit, sent, partial int) []byte {
	total := limit - MinFrameSize
	var b []byte
	for off := 0; off < sent; {
		n := min(16<<10, sent-off)
		body := make([]byte, n)
		if off == 0 {
			body = append(u32(uint32(total)), body[:n-4]...)
			n -= 4
		}
		b = append(b, raw(TypeResponse, FlagMore, 1, body)...)
		off += n
	}
	rest := total - sent // for the first chunk: its length field and the body but 4 bytes
	hdr := append(u32(uint32(MinFrameSize+rest)), raw(TypeResponse, 0, 1)[4:]...)
	if sent == 0 {
		hdr[5] |= byte(FlagMore)
		hdr = append(hdr, u32(uint32(total))...)
		partial -= 4
	}
	return append(append(b, hdr...), make([]byte, max(partial, 0))...)
}

// TestSplitMessageJoinsInFewSteps reads a split message whose body is just
// over 1 MiB, in 16 KiB chunks that have all arrived: the join buffer grows
// in a few steps to the body's exact size (64 KiB, 256 KiB, then the size
// class of the body, 2 MiB), not one step past a guess (to 4 MiB, after
// copying 1 MiB over).
func TestSplitMessageJoinsInFewSteps(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	resp := &Frame{Type: TypeResponse, XID: 1, Payload: pattern(1<<20 + 20)}
	var buf bytes.Buffer
	w := Native.NewWriter(&buf).(ChunkWriter)
	for off, body := 0, Native.FrameSize(resp)-MinFrameSize; off < body; {
		next, err := w.WriteChunk(resp, off, 16<<10)
		require.NoError(t, err)
		off = next
	}
	require.NoError(t, w.(Writer).Flush())
	drainLargePools()
	r := Native.NewReader(iotest.HalfReader(bytes.NewReader(buf.Bytes())), 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var f Frame
	require.NoError(t, r.ReadFrame(&f))
	runtime.ReadMemStats(&after)
	require.Equal(t, resp.Payload, f.Payload)
	f.Release()
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes allocated to join %d", got, len(resp.Payload))
	assert.Less(t, got, uint64(2<<20+512<<10), "64 KiB + 256 KiB + 2 MiB, and the read buffer")
}
