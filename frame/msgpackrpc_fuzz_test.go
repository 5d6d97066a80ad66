package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// FuzzReadMsgpackRPC reads arbitrary bytes as a msgpack-rpc stream. The
// reader must not panic, must fail only with EOF, ErrUnexpectedEOF,
// ErrMalformed, ErrTooLarge or ErrPeerViolation, must read the same
// frames whole and one byte at a time with a tiny first buffer, and every
// frame it reads must write back to bytes that read as the same frame.
func FuzzReadMsgpackRPC(f *testing.F) {
	for _, s := range []string{
		"94 00 01 a9 6e76696d5f6576616c 91 a3 312b32",
		"94 00 ce00000005 a1 6d 90",
		"94 01 d30000000000000005 c0 07",
		"dc0003 02 a1 6e 90",
		"94 01 02 a4 6f6f7073 c0",
		"94 01 02 92 01 c4 01 76 c0",
		"94 01 02 82 a1 61 01 a1 62 02 c0",
		"94 01 00 92 00 a4 62616421 c0",
		"94 00 01 c4 03 616464 92 01 02",
		"94 00 01 a1 6d dd7fffffff",
		"94 00 01 db7fffffff",
		"94 01 02 d4 05 01 c0",
		"92 00 01",
		"c1",
		"94 00 01 a1 6d 91 a3 616263 94 01 01 c0 2a 93 02 a1 6e 90",
	} {
		b, err := hexBytes(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 16
		whole, err := readAllMrpc(t, MsgpackRPC.NewReader(bytes.NewReader(data), max))
		r := MsgpackRPC.NewReader(iotest.OneByteReader(bytes.NewReader(data)), max)
		r.(*mrpcReader).step = 5
		pieces, piecesErr := readAllMrpc(t, r)
		require.Equal(t, whole, pieces, "read one byte at a time")
		require.Equal(t, fmt.Sprint(err), fmt.Sprint(piecesErr), "read one byte at a time")
	})
}

// readAllMrpc reads up to 64 frames, checks each as FuzzReadMsgpackRPC
// says, and returns their descriptions and the error that ended it.
func readAllMrpc(t *testing.T, r Reader) ([]string, error) {
	var got []string
	for range 64 {
		var f Frame
		err := r.ReadFrame(&f)
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrPeerViolation) {
				t.Fatalf("ReadFrame: unexpected error %v", err)
			}
			require.Nil(t, f.Payload, "payload handed out with error %v", err)
			return got, err
		}
		desc := fmt.Sprintf("%v %x", &f, f.Payload)
		var buf bytes.Buffer
		w := MsgpackRPC.NewWriter(&buf)
		require.NoError(t, w.WriteFrame(&f), "writing back %v", &f)
		require.NoError(t, w.Flush())
		require.LessOrEqual(t, buf.Len(), MsgpackRPC.FrameSize(&f))
		var again Frame
		require.NoError(t, MsgpackRPC.NewReader(&buf, 0).ReadFrame(&again), "reading back %v from %x", &f, buf.Bytes())
		if f.Type == TypeError {
			require.Equal(t, f.Err.Message, again.Err.Message)
			require.Equal(t, f.Err.Code == CodeBadRequest, again.Err.Code == CodeBadRequest)
		} else {
			// The same frame, its integers in their shortest form.
			want, err := appendCompact(nil, f.Payload)
			if err != nil {
				want = f.Payload
			}
			require.Equal(t, fmt.Sprintf("%v %v %d", f.Type, f.Method, f.XID), fmt.Sprintf("%v %v %d", again.Type, again.Method, again.XID))
			require.Equal(t, want, again.Payload, "payload of %v", &f)
		}
		again.Release()
		f.Release()
		got = append(got, desc)
	}
	return got, nil
}

func hexBytes(s string) ([]byte, error) {
	var b []byte
	_, err := fmt.Sscanf(string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)), "%x", &b)
	return b, err
}
