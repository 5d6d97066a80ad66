package frame

import (
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenDir holds the hand-checked frames that PROTOCOL.md shows. The tests
// never rewrite them.
const goldenDir = "../testdata/golden"

// goldenCase is a frame and the golden file that holds its encoding.
type goldenCase struct {
	frame Frame
	// args, if not nil, is a Go value that EncodePayload turns into exactly
	// frame.Payload, and decoded what DecodePayload makes of the payload
	// when decoding into an any.
	args, decoded any
}

// goldenFrames maps each golden file but preface.hex to the frame it holds.
var goldenFrames = map[string]goldenCase{
	"request.hex": {
		frame:   Frame{Type: TypeRequest, XID: 1, Method: "Arith.Add", Payload: []byte{0x92, 0x02, 0x03}},
		args:    []int{2, 3},
		decoded: []any{int8(2), int8(3)},
	},
	"request_deadline.hex": {
		frame: Frame{
			Type: TypeRequest, Flags: FlagDeadline, XID: 2, Budget: 1500 * time.Millisecond,
			Method: "Arith.Add", Payload: []byte{0x92, 0x04, 0x05},
		},
		args:    []int{4, 5},
		decoded: []any{int8(4), int8(5)},
	},
	"notify.hex": {
		frame:   Frame{Type: TypeNotify, Method: "log", Payload: []byte("\xa7started")},
		args:    "started",
		decoded: "started",
	},
	"response.hex": {
		frame:   Frame{Type: TypeResponse, XID: 1, Payload: []byte{0x05}},
		args:    5,
		decoded: int8(5),
	},
	"response_empty.hex": {
		frame: Frame{Type: TypeResponse, XID: 5},
	},
	"error.hex": {
		frame: Frame{Type: TypeError, XID: 3, Err: &RemoteError{Code: CodeNoMethod, Message: `no method "Arith.Sub"`}},
	},
	"error_panic_trace.hex": {
		frame: Frame{Type: TypeError, XID: 4, Err: &RemoteError{
			Code:    CodePanic,
			Message: "runtime error: integer divide by zero",
			Trace:   "goroutine 7 [running]:\nmain.div()\n",
		}},
	},
	"cancel.hex": {
		frame: Frame{Type: TypeCancel, XID: 2},
	},
	"goaway.hex": {
		frame: Frame{Type: TypeGoAway, Err: &RemoteError{Code: CodeShutdown, Message: "server is shutting down"}},
	},
	"ping.hex": {
		frame: Frame{Type: TypePing, XID: 0x0102030405060708},
	},
	"pong.hex": {
		frame: Frame{Type: TypePong, XID: 0x0102030405060708},
	},
	"challenge.hex": {
		frame: Frame{Type: TypeChallenge, Payload: goldenNonceC},
	},
	"proof.hex": {
		frame: Frame{Type: TypeProof, Payload: goldenProofS},
	},
	"request_stream_key.hex": {
		frame: Frame{
			Type: TypeRequest, Flags: FlagKey | FlagStream | Flags(0).WithPriority(PriorityHigh), XID: 6,
			Window: 16, Key: "u1", Method: "Files.Read", Payload: []byte("\xa1a"),
		},
		args:    "a",
		decoded: "a",
	},
	"yield.hex": {
		frame:   Frame{Type: TypeYield, XID: 6, Payload: []byte("\xa5chunk")},
		args:    "chunk",
		decoded: "chunk",
	},
	"push.hex": {
		frame:   Frame{Type: TypePush, Flags: Flags(0).WithPriority(PriorityLow), XID: 7, Payload: []byte{42}},
		args:    42,
		decoded: int8(42),
	},
	"close.hex": {
		frame: Frame{Type: TypeClose, XID: 7},
	},
	"want.hex": {
		frame: Frame{Type: TypeWant, XID: 6, Window: 8},
	},
	"take.hex": {
		frame: Frame{Type: TypeTake, XID: 7, Window: 4},
	},
}

// goldenSplit is what split.hex holds once read: the PONG that came
// between the chunks, then the joined RESPONSE.
var goldenSplit = []Frame{
	{Type: TypePong, XID: 1},
	{Type: TypeResponse, XID: 9, Payload: []byte("\xa5hello")},
}

// TestGoldenSplit checks that split.hex reads as goldenSplit, and that a
// writer splitting the RESPONSE into pieces of 3 bytes, with the PONG
// between them, writes exactly its bytes.
func TestGoldenSplit(t *testing.T) {
	golden := readGolden(t, "split.hex")
	r := Native.NewReader(bytes.NewReader(golden), 0)
	for _, want := range goldenSplit {
		var f Frame
		require.NoError(t, r.ReadFrame(&f))
		assert.Equal(t, visible(&want), visible(&f))
		f.Release()
	}
	var f Frame
	assert.Equal(t, io.EOF, r.ReadFrame(&f))

	var buf bytes.Buffer
	w := Native.NewWriter(&buf)
	resp := goldenSplit[1]
	next, err := w.(ChunkWriter).WriteChunk(&resp, 0, 3)
	require.NoError(t, err)
	require.Equal(t, 3, next)
	require.NoError(t, w.WriteFrame(&goldenSplit[0]))
	next, err = w.(ChunkWriter).WriteChunk(&resp, next, 3)
	require.NoError(t, err)
	require.Equal(t, 6, next, "the whole body")
	require.NoError(t, w.Flush())
	assert.Equal(t, hex.Dump(golden), hex.Dump(buf.Bytes()))
}

// The inputs of the golden authentication, as PROTOCOL.md gives them:
// the key, the nonce of the side in role C, which opened the stream
// (challenge.hex), and of the side in role S, which accepted it, and the
// proof each side sends (proof.hex is S's).
var (
	goldenKey    = []byte("muxrpc test key")
	goldenNonceC = seq(0x00, NonceSize)
	goldenNonceS = seq(0x20, NonceSize)
	goldenProofC = mustHex("150e23c6bb45ede726ed1efbeee981cc8aa4c7294db611aa4a271d650e3c102d")
	goldenProofS = mustHex("f6ca05895614449e2c002849928dbb7864b7a72107031178b52a9c5f5c51272d")
)

// seq returns n bytes counting up from first.
func seq(first byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// parseHex decodes the golden file format described in
// testdata/golden/README.md: hex digit pairs separated by white space, with
// everything from a '#' to the end of its line a comment.
func parseHex(text string) ([]byte, error) {
	var digits strings.Builder
	for line := range strings.Lines(text) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, field := range strings.Fields(line) {
			digits.WriteString(field)
		}
	}
	return hex.DecodeString(digits.String())
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(goldenDir, name))
	require.NoError(t, err)
	b, err := parseHex(string(text))
	require.NoError(t, err, "golden file %s", name)
	return b
}

func TestParseHex(t *testing.T) {
	b, err := parseHex("# comment\n00 0a ff # tail 12\n\nAB#x\n")
	require.NoError(t, err)
	assert.Equal(t, []byte{0x00, 0x0a, 0xff, 0xab}, b)
	_, err = parseHex("0")
	assert.Error(t, err, "odd number of digits")
	_, err = parseHex("zz")
	assert.Error(t, err, "not hex")
}

// TestGoldenFilesAreKnown checks that every golden file has a case here and
// every case a file, so that none is left unchecked.
func TestGoldenFilesAreKnown(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.hex"))
	require.NoError(t, err)
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f))
	}
	want := []string{"preface.hex", "split.hex"}
	for name := range goldenFrames {
		want = append(want, name)
	}
	sort.Strings(want)
	assert.Equal(t, want, got)
}

func TestGoldenPreface(t *testing.T) {
	golden := readGolden(t, "preface.hex")

	var buf bytes.Buffer
	w := Native.NewWriter(&buf)
	require.NoError(t, w.WritePreface())
	require.NoError(t, w.Flush())
	assert.Equal(t, golden, buf.Bytes(), "WritePreface")
	assert.Equal(t, Preface[:], golden)

	r := Native.NewReader(bytes.NewReader(golden), 0)
	require.NoError(t, r.ReadPreface())
	var f Frame
	assert.Equal(t, io.EOF, r.ReadFrame(&f), "the preface is all the file holds")
}

func TestGoldenFrames(t *testing.T) {
	for name, c := range goldenFrames {
		t.Run(name, func(t *testing.T) {
			golden := readGolden(t, name)
			want := c.frame

			// Encoding the frame gives exactly the golden bytes.
			var buf bytes.Buffer
			w := Native.NewWriter(&buf)
			require.NoError(t, w.WriteFrame(&want))
			require.NoError(t, w.Flush())
			assert.Equal(t, hex.Dump(golden), hex.Dump(buf.Bytes()), "encoding %v", &want)
			assert.Equal(t, len(golden)-4, Native.FrameSize(&want), "FrameSize")

			// Decoding the golden bytes gives the frame back, and nothing
			// follows it.
			r := Native.NewReader(bytes.NewReader(golden), 0)
			var got Frame
			require.NoError(t, r.ReadFrame(&got))
			assertSameFrame(t, &want, &got)
			got.Release()
			assert.Equal(t, io.EOF, r.ReadFrame(&got))

			// The payload shown in the golden file is what the Go value
			// encodes to, and decodes back to it.
			if c.args != nil {
				var f Frame
				require.NoError(t, f.EncodePayload(c.args))
				assert.Equal(t, want.Payload, f.Payload, "EncodePayload(%#v)", c.args)
				f.Release()
				var v any
				require.NoError(t, DecodePayload(want.Payload, &v))
				assert.Equal(t, c.decoded, v)
			}
		})
	}
}

// TestGoldenStream reads every golden frame from one stream after the
// preface, the way a peer meets them.
func TestGoldenStream(t *testing.T) {
	names := make([]string, 0, len(goldenFrames))
	for name := range goldenFrames {
		names = append(names, name)
	}
	sort.Strings(names)
	stream := readGolden(t, "preface.hex")
	for _, name := range names {
		stream = append(stream, readGolden(t, name)...)
	}
	r := Native.NewReader(bytes.NewReader(stream), 0)
	require.NoError(t, r.ReadPreface())
	for _, name := range names {
		var got Frame
		require.NoError(t, r.ReadFrame(&got), name)
		want := goldenFrames[name].frame
		assertSameFrame(t, &want, &got)
		got.Release()
	}
	var f Frame
	assert.Equal(t, io.EOF, r.ReadFrame(&f))
}

// assertSameFrame compares the wire-visible fields of two frames: an empty
// payload equals a nil one, and the pooled buffer is ignored.
func assertSameFrame(t testing.TB, want, got *Frame) bool {
	t.Helper()
	return assert.Equal(t, visible(want), visible(got))
}

func visible(f *Frame) Frame {
	v := *f
	v.buf = nil
	if len(v.Payload) == 0 {
		v.Payload = nil
	}
	if v.Err != nil {
		e := *v.Err
		v.Err = &e
	}
	return v
}
