package frame

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingWriter records the size of every Write.
type countingWriter struct {
	bytes.Buffer
	writes []int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	return c.Buffer.Write(p)
}

func TestWriterBuffersUntilFlushAndHoldsNothingIdle(t *testing.T) {
	var out countingWriter
	w := Native.NewWriter(&out).(*nativeWriter)
	require.NoError(t, w.WritePreface())
	for i := range 100 {
		require.NoError(t, w.WriteFrame(&Frame{Type: TypeCancel, XID: uint64(i + 1)}))
	}
	assert.Empty(t, out.writes, "nothing is written before Flush")
	require.NoError(t, w.Flush())
	assert.Equal(t, []int{len(Preface) + 100*HeaderSize}, out.writes, "one write for all")
	assert.Nil(t, w.buf, "the buffer went back to the pool")
	require.NoError(t, w.Flush(), "flushing nothing is fine")
	assert.Len(t, out.writes, 1)
}

func TestWriterSendsLargePayloadsDirectly(t *testing.T) {
	var out countingWriter
	w := Native.NewWriter(&out)
	big := bytes.Repeat([]byte{0xab}, directWrite)
	f := Frame{Type: TypeResponse, XID: 1, Payload: big}
	require.NoError(t, w.WriteFrame(&Frame{Type: TypeCancel, XID: 9}))
	require.NoError(t, w.WriteFrame(&f))
	assert.Equal(t, []int{2 * HeaderSize, len(big)}, out.writes, "buffered bytes, then the payload as it is")
	require.NoError(t, w.Flush())

	r := Native.NewReader(&out.Buffer, 0)
	var got Frame
	require.NoError(t, r.ReadFrame(&got))
	assert.Equal(t, uint64(9), got.XID)
	require.NoError(t, r.ReadFrame(&got))
	assert.Equal(t, big, got.Payload)
	got.Release()
}

func TestLongMethodName(t *testing.T) {
	var buf bytes.Buffer
	w := Native.NewWriter(&buf)
	long := strings.Repeat("m", MaxMethodLen)
	require.Greater(t, len(long), largeReadSize/2)
	require.NoError(t, w.WriteFrame(&Frame{Type: TypeRequest, XID: 1, Method: long, Payload: []byte{0xc0}}))
	require.NoError(t, w.WriteFrame(&Frame{Type: TypeRequest, XID: 2, Method: "short", Payload: []byte{0x01}}))
	require.NoError(t, w.Flush())
	r := Native.NewReader(&buf, 0)
	var f Frame
	require.NoError(t, r.ReadFrame(&f))
	assert.Equal(t, long, f.Method)
	assert.Equal(t, []byte{0xc0}, f.Payload)
	f.Release()
	require.NoError(t, r.ReadFrame(&f))
	assert.Equal(t, "short", f.Method)
	assert.Equal(t, []byte{0x01}, f.Payload)
	f.Release()
}

func TestWriterErrorsStick(t *testing.T) {
	w := Native.NewWriter(brokenWriter{})
	require.NoError(t, w.WriteFrame(&Frame{Type: TypeCancel, XID: 1}))
	require.ErrorIs(t, w.Flush(), assert.AnError)
	require.ErrorIs(t, w.WriteFrame(&Frame{Type: TypeCancel, XID: 2}), assert.AnError)
	require.ErrorIs(t, w.WritePreface(), assert.AnError)
	require.ErrorIs(t, w.Flush(), assert.AnError)
}

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, assert.AnError }

// TestWriterGathersChunksInLongerWrites checks the writer's buffers: whole
// frames leave in writes of about writeBufferSize (the buffer is written
// out once the frame that fills it is in), and the chunks of split
// messages, with the whole frames between them, in writes of up to
// chunkBufferSize, so that a stream busy with chunks makes fewer system
// calls.
func TestWriterGathersChunksInLongerWrites(t *testing.T) {
	var out countingWriter
	w := Native.NewWriter(&out).(*nativeWriter)
	small := Frame{Type: TypeResponse, XID: 1, Payload: bytes.Repeat([]byte{0xc3}, 1000)}
	for range 200 {
		require.NoError(t, w.WriteFrame(&small))
	}
	require.NoError(t, w.Flush())
	for i, n := range out.writes {
		assert.LessOrEqual(t, n, writeBufferSize+HeaderSize+len(small.Payload), "write %d of whole frames", i)
	}
	assert.GreaterOrEqual(t, len(out.writes), 200*1000/writeBufferSize, "whole frames alone keep to the smaller buffer")

	out.writes = nil
	const chunk = 16 << 10
	big := Frame{Type: TypeResponse, XID: 2, Payload: bytes.Repeat([]byte{0xc3}, 1<<20)}
	body := Native.FrameSize(&big) - MinFrameSize
	for off := 0; off < body; {
		var err error
		off, err = w.WriteChunk(&big, off, chunk)
		require.NoError(t, err)
		require.NoError(t, w.WriteFrame(&Frame{Type: TypeCancel, XID: uint64(off)}), "a whole frame between chunks")
	}
	require.NoError(t, w.Flush())
	for i, n := range out.writes {
		assert.LessOrEqual(t, n, chunkBufferSize, "write %d of chunks", i)
	}
	assert.LessOrEqual(t, len(out.writes), 2*(1<<20)/chunkBufferSize, "%d writes for 1 MiB in 16 KiB chunks", len(out.writes))
	assert.Nil(t, w.buf, "the buffer went back to the pool")

	r := Native.NewReader(&out.Buffer, 0)
	var f Frame
	for {
		require.NoError(t, r.ReadFrame(&f))
		if f.XID == 2 {
			break
		}
		f.Release()
	}
	assert.Equal(t, big.Payload, f.Payload, "joined whole")
	f.Release()
}
