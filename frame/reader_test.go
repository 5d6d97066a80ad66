package frame

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestStreamReaderDeliversEverything(t *testing.T) {
	data := pattern(300 << 10)
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"plain":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+err": iotest.DataErrReader,
	} {
		for _, chunk := range []int{1, 4, 100, 4096, 70000} {
			s := newStreamReader(wrap(bytes.NewReader(data)))
			var got []byte
			buf := make([]byte, chunk)
			for {
				n, err := io.ReadFull(s, buf)
				got = append(got, buf[:n]...)
				if err != nil {
					require.True(t, err == io.EOF || err == io.ErrUnexpectedEOF, "%s/%d: %v", name, chunk, err)
					break
				}
			}
			require.Equal(t, data, got, "%s, chunks of %d", name, chunk)
		}
	}
}

// stepReader returns its chunks one Read at a time.
type stepReader struct{ chunks [][]byte }

func (r *stepReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func TestStreamReaderGrowsWhileBusyAndShrinksWhenQuiet(t *testing.T) {
	busy := pattern(200 << 10)
	src := &stepReader{chunks: [][]byte{busy, []byte("quiet")}}
	s := newStreamReader(src)
	assert.Nil(t, s.large, "a new reader holds only its small buffer")

	buf := make([]byte, 100)
	_, err := io.ReadFull(s, buf)
	require.NoError(t, err)
	assert.NotNil(t, s.large, "a full small read switches to the large buffer")
	assert.Equal(t, busy[:100], buf)

	rest := make([]byte, len(busy)-100)
	_, err = io.ReadFull(s, rest)
	require.NoError(t, err)
	assert.Equal(t, busy[100:], rest)

	q := make([]byte, 5)
	_, err = io.ReadFull(s, q)
	require.NoError(t, err)
	assert.Equal(t, "quiet", string(q))
	_, err = s.Read(q)
	assert.Equal(t, io.EOF, err)
	assert.Nil(t, s.large, "a short read gives the large buffer back")
}
