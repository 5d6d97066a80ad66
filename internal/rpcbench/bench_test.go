package rpcbench

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/transport"
)

// BenchmarkCall measures echo calls from many goroutines over one stream.
// See the package comment for the names of its sub-benchmarks.
//
// ns/op is wall time per call with all callers running, so calls/s is its
// inverse. allocs/op and B/op come from process-wide counters and so count
// the client and the server together: both ends run in this process.
func BenchmarkCall(b *testing.B) {
	for _, sys := range systems {
		b.Run(sys.name, func(b *testing.B) {
			for _, kind := range kinds {
				b.Run(string(kind), func(b *testing.B) {
					for _, p := range payloads {
						b.Run(p.name, func(b *testing.B) {
							payload := makePayload(p.size)
							for _, callers := range callerCounts {
								b.Run(strconv.Itoa(callers), func(b *testing.B) {
									benchCalls(b, sys, kind, payload, callers)
								})
							}
						})
					}
				})
			}
		})
	}
}

// benchCalls runs b.N echo calls of payload in total, shared by callers
// goroutines that each call sequentially, over a client and server set up
// before the timer starts and torn down after it stops.
func benchCalls(b *testing.B, sys system, kind transport.Kind, payload []byte, callers int) {
	c, err := sys.start(kind)
	if err != nil {
		b.Fatal(err)
	}
	// One call before the timer starts, so that connection setup (the
	// prefaces, net/rpc's first gob type exchange) is not measured.
	var warm []byte
	if err := c.echo(payload, &warm); err != nil {
		c.close()
		b.Fatal(err)
	}
	// The callers are started before the timer and wait for start, so that
	// spawning them is not measured.
	var (
		remaining atomic.Int64
		start     = make(chan struct{})
		wg        sync.WaitGroup
		errOnce   sync.Once
		firstErr  error
	)
	remaining.Store(int64(b.N))
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reply []byte // reused from call to call, as a real caller might
			<-start
			for remaining.Add(-1) >= 0 {
				err := c.echo(payload, &reply)
				if err == nil {
					err = checkEcho(payload, reply)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "calls/s")
	}
	if err := c.close(); err != nil {
		b.Errorf("closing: %v", err)
	}
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// smallStruct stands for typical small structured arguments.
type smallStruct struct {
	ID    uint64
	Name  string
	Count int32
	OK    bool
}

// BenchmarkEncodeDecode measures the frame package alone: msgpack payloads
// encoded into and decoded from pooled buffers, and a 16-byte REQUEST frame
// written by a Native Writer and read back by a Native Reader through a
// bytes.Buffer.
func BenchmarkEncodeDecode(b *testing.B) {
	bytes16 := makePayload(16)
	small := smallStruct{ID: 42, Name: "muxrpc", Count: 7, OK: true}

	b.Run("EncodePayload/bytes16", func(b *testing.B) {
		var f frame.Frame
		b.ReportAllocs()
		for b.Loop() {
			if err := f.EncodePayload(bytes16); err != nil {
				b.Fatal(err)
			}
			f.Release()
		}
	})
	b.Run("EncodePayload/bytes4KiB", func(b *testing.B) {
		// Larger than the smallest pooled buffer, which encoding starts from.
		bytes4K := makePayload(4 << 10)
		var f frame.Frame
		b.ReportAllocs()
		for b.Loop() {
			if err := f.EncodePayload(bytes4K); err != nil {
				b.Fatal(err)
			}
			f.Release()
		}
	})
	b.Run("EncodePayload/struct", func(b *testing.B) {
		var f frame.Frame
		b.ReportAllocs()
		for b.Loop() {
			if err := f.EncodePayload(&small); err != nil {
				b.Fatal(err)
			}
			f.Release()
		}
	})

	var f frame.Frame
	if err := f.EncodePayload(bytes16); err != nil {
		b.Fatal(err)
	}
	encBytes := bytes.Clone(f.Payload)
	if err := f.EncodePayload(&small); err != nil {
		b.Fatal(err)
	}
	encStruct := bytes.Clone(f.Payload)
	f.Release()

	b.Run("DecodePayload/bytes16", func(b *testing.B) {
		var out []byte // reused, as Mux.Call's caller may
		b.ReportAllocs()
		for b.Loop() {
			if err := frame.DecodePayload(encBytes, &out); err != nil {
				b.Fatal(err)
			}
		}
		if err := checkEcho(bytes16, out); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("DecodePayload/bytes16-fresh", func(b *testing.B) {
		// A nil slice each time, as demux.Func's fresh argument value.
		b.ReportAllocs()
		for b.Loop() {
			var out []byte
			if err := frame.DecodePayload(encBytes, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodePayload/struct", func(b *testing.B) {
		var out smallStruct
		b.ReportAllocs()
		for b.Loop() {
			if err := frame.DecodePayload(encStruct, &out); err != nil {
				b.Fatal(err)
			}
		}
		if out != small {
			b.Fatalf("decoded %+v, want %+v", out, small)
		}
	})

	b.Run("Native/request16", func(b *testing.B) {
		var buf bytes.Buffer
		w := frame.Native.NewWriter(&buf)
		r := frame.Native.NewReader(&buf, 0)
		if err := w.WritePreface(); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := r.ReadPreface(); err != nil {
			b.Fatal(err)
		}
		req := frame.Frame{Type: frame.TypeRequest, Method: "echo", Payload: encBytes}
		var got frame.Frame
		xid := uint64(0)
		b.SetBytes(int64(frame.Native.FrameSize(&req) + 4))
		b.ReportAllocs()
		for b.Loop() {
			xid++
			req.XID = xid
			if err := w.WriteFrame(&req); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := r.ReadFrame(&got); err != nil {
				b.Fatal(err)
			}
			if got.XID != xid || got.Method != "echo" || len(got.Payload) != len(encBytes) {
				b.Fatalf("read back %v", &got)
			}
			got.Release()
		}
	})
}
