package frame

import (
	"bytes"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReferBytesWritesWhatEncodePayloadWrites(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 1<<16 - 1, 1 << 16, 1 << 20} {
		b := bytes.Repeat([]byte{0x5a}, n)
		if n == 0 {
			b = []byte{}
		}
		for _, typ := range []Type{TypeRequest, TypeResponse} {
			var copied, referred Frame
			copied = Frame{Type: typ, XID: 9, Method: "m"}
			referred = copied
			require.NoError(t, copied.EncodePayload(b))
			var released sync.WaitGroup
			referred.ReferBytes(b, &released)
			if typ == TypeRequest {
				referred.Flags, referred.Budget = FlagDeadline, 5
				copied.Flags, copied.Budget = FlagDeadline, 5
			}
			if typ == TypeResponse {
				referred.Method, copied.Method = "", ""
			}
			assert.Equal(t, Native.FrameSize(&copied), Native.FrameSize(&referred), "%v, %d bytes: FrameSize", typ, n)
			var want, got bytes.Buffer
			for _, c := range []struct {
				f   *Frame
				out *bytes.Buffer
			}{{&copied, &want}, {&referred, &got}} {
				w := Native.NewWriter(c.out)
				require.NoError(t, w.WriteFrame(c.f))
				require.NoError(t, w.Flush())
			}
			assert.Equal(t, want.Bytes(), got.Bytes(), "%v, %d bytes: the bytes on the wire", typ, n)
			copied.Release()
			referred.Release()
			released.Wait() // returns: Release let go of b
			assert.Nil(t, referred.ref)
		}
	}
}

func TestReferBytesKeepsReferringUntilReleased(t *testing.T) {
	b := bytes.Repeat([]byte{1}, 100)
	var released sync.WaitGroup
	var f Frame
	f.ReferBytes(b, &released)
	assert.Same(t, &b[0], &f.tail()[0], "no copy")
	f.KeepPayload(TypeResponse, 3) // the frame moves on; so does the reference
	assert.Same(t, &b[0], &f.tail()[0])
	assert.Same(t, &released, f.ref.released, "still to be told")
	f.Release()
	released.Wait() // returns: Release told it
	assert.Nil(t, f.ref)
	f.Release() // a second Release of an emptied frame does nothing more
}
