package frame

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// chunkReader is an endless stream that repeats b and returns at most
// chunk bytes per Read, like a socket that delivers a segment at a time.
type chunkReader struct {
	b     []byte
	off   int
	chunk int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(p) > r.chunk {
		p = p[:r.chunk]
	}
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

// benchRead reads the frame encoded in b over and over, chunk bytes per
// read from the underlying stream.
func benchRead(b *testing.B, f *Frame, chunk int) {
	benchReadBytes(b, encode(b, f), chunk)
}

// split encodes f in chunks of at most n bytes of its body.
func split(b *testing.B, f *Frame, n int) []byte {
	var buf bytes.Buffer
	w := Native.NewWriter(&buf).(ChunkWriter)
	for off, body := 0, Native.FrameSize(f)-MinFrameSize; off < body; {
		next, err := w.WriteChunk(f, off, n)
		if err != nil {
			b.Fatal(err)
		}
		off = next
	}
	if err := w.(Writer).Flush(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// benchReadBytes reads the frames encoded in enc over and over, chunk
// bytes per read from the underlying stream.
func benchReadBytes(b *testing.B, enc []byte, chunk int) {
	r := Native.NewReader(&chunkReader{b: enc, chunk: chunk}, 0)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	var got Frame
	for b.Loop() {
		if err := r.ReadFrame(&got); err != nil {
			b.Fatal(err)
		}
		got.Release()
	}
}

func BenchmarkReadFrame(b *testing.B) {
	small := &Frame{Type: TypeRequest, Flags: FlagDeadline, XID: 1, Budget: time.Second, Method: "Arith.Add", Payload: []byte{0x92, 1, 2}}
	resp4K := &Frame{Type: TypeResponse, XID: 1, Payload: make([]byte, 4<<10)}
	resp1M := &Frame{Type: TypeResponse, XID: 1, Payload: make([]byte, 1<<20)}
	errFrame := &Frame{Type: TypeError, XID: 1, Err: &RemoteError{Code: CodeApplication, Message: "something went wrong"}}
	b.Run("request", func(b *testing.B) { benchRead(b, small, 64<<10) })
	b.Run("error", func(b *testing.B) { benchRead(b, errFrame, 64<<10) })
	b.Run("response4K", func(b *testing.B) { benchRead(b, resp4K, 64<<10) })
	b.Run("response1M", func(b *testing.B) { benchRead(b, resp1M, 1<<20+HeaderSize) })
	b.Run("response1M/16K-reads", func(b *testing.B) { benchRead(b, resp1M, 16<<10) })
	// As channel's writer sends it by default: in chunks of 16 KiB, read
	// as a socket would deliver them to the reader's 64 KiB reads.
	b.Run("response1M/16K-chunks", func(b *testing.B) { benchReadBytes(b, split(b, resp1M, 16<<10), 64<<10) })
}

func BenchmarkWriteFrame(b *testing.B) {
	for name, f := range map[string]*Frame{
		"request":    {Type: TypeRequest, Flags: FlagDeadline, XID: 1, Budget: time.Second, Method: "Arith.Add", Payload: []byte{0x92, 1, 2}},
		"response4K": {Type: TypeResponse, XID: 1, Payload: make([]byte, 4<<10)},
	} {
		b.Run(name, func(b *testing.B) {
			w := Native.NewWriter(io.Discard)
			b.SetBytes(int64(Native.FrameSize(f) + 4))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteFrame(f); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
