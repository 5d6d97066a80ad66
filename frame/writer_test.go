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
