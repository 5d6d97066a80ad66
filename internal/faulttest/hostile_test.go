package faulttest

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
)

// allocated is how many bytes of heap the process has allocated so far.
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestStalledHugeFramesHoldLittleMemory: 32 clients each send the header of
// a 16 MiB REQUEST and a few bytes of it, then stall. The server allocates
// memory only for what arrived (counted as all it allocated from the first
// connection to the last close, so that nothing depends on when it is
// measured), and its frame timeout closes them all.
func TestStalledHugeFramesHoldLittleMemory(t *testing.T) {
	const conns = 32
	const frameTimeout = 300 * time.Millisecond
	s := demux.NewServer(newRouter(nil), demux.FrameTimeout(frameTimeout))
	ln := serveLoopback(t, s)
	goroutines := runtime.NumGoroutine()
	before := allocated()

	head := append([]byte(nil), frame.Preface[:]...)
	head = binary.BigEndian.AppendUint32(head, frame.DefaultMaxFrameSize)
	head = append(head, byte(frame.TypeRequest), 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 'e', 'c', 'h', 'o')
	head = append(head, make([]byte, 100)...)
	clients := make([]net.Conn, conns)
	for i := range clients {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(head); err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	// The frame timeout closes every one of them.
	start := time.Now()
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		for {
			_, err := c.Read(buf)
			if err == nil {
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection %d was not closed by the frame timeout within 10 s", i)
			}
			break
		}
	}
	t.Logf("all %d closed %v after the last was sent (frame timeout %v)", conns, time.Since(start), frameTimeout)
	grown := allocated() - before
	t.Logf("%d stalled 16 MiB frames: %d KiB allocated in all (%d B per connection)", conns, grown/1024, grown/conns)
	if grown > 32<<20 {
		t.Errorf("%d MiB allocated for %d stalled frames; the bound is 32 MiB", grown>>20, conns)
	}
	waitGoroutines(t, goroutines)
}

// waitGoroutines waits, bounded, until no more goroutines run than want.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still run, %d before", runtime.NumGoroutine(), want)
		}
		runtime.Gosched()
	}
}

// TestClientsThatNeverReadAreBoundedServerWide: 8 clients each send 40
// requests and never read, and every handler stays stuck: what they hold
// is bounded per connection (MaxInFlight) and, across connections, by
// MaxServerInFlight. The server runs exactly that many handlers, refuses
// the rest with CodeOverloaded (replies nobody reads), and its goroutines
// never exceed the bound plus a few per connection.
func TestClientsThatNeverReadAreBoundedServerWide(t *testing.T) {
	const (
		conns       = 8
		perConn     = 40 // fewer than MaxInFlight: none is held
		serverBound = 200
	)
	var started atomic.Int32
	r := demux.NewRouter()
	r.Handle("big", demux.Func(func(ctx context.Context, _ int) ([]byte, error) {
		started.Add(1)
		<-ctx.Done() // a handler stuck as long as the connection lasts
		return nil, ctx.Err()
	}))
	s := demux.NewServer(r, demux.MaxInFlight(64), demux.MaxServerInFlight(serverBound))
	ln := serveLoopback(t, s)
	goroutines := runtime.NumGoroutine()
	var heap runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heap)
	before := heap.HeapAlloc

	var stream []byte
	stream = append(stream, frame.Preface[:]...)
	w := frame.Native.NewWriter(writerFunc(func(p []byte) (int, error) {
		stream = append(stream, p...)
		return len(p), nil
	}))
	for i := range perConn {
		f := frame.Frame{Type: frame.TypeRequest, XID: uint64(i + 1), Method: "big", Payload: []byte{0x01}}
		if err := w.WriteFrame(&f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4 << 10) // and never read
		go c.Write(stream)                      // blocks once the server stops reading; ends when c closes
	}
	// Handlers start until the server-wide bound is reached; wait for
	// that, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for started.Load() < serverBound { // 320 requests for 200 places
		if time.Now().After(deadline) {
			t.Fatalf("only %d handlers started", started.Load())
		}
		runtime.Gosched()
	}
	added := runtime.NumGoroutine() - goroutines - conns // the writers above are the test's
	runtime.GC()
	runtime.ReadMemStats(&heap)
	t.Logf("%d clients that never read: %d handlers ran, %d goroutines and %d KiB of heap added",
		conns, started.Load(), added, (int64(heap.HeapAlloc)-int64(before))/1024)
	if limit := serverBound + 6*conns; added > limit {
		t.Errorf("%d goroutines added; the server-wide bound allows %d", added, limit)
	}
	if n := started.Load(); n > serverBound {
		t.Errorf("%d handlers ran at once; the server-wide bound is %d", n, serverBound)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// serveLoopback serves s on a TCP listener on 127.0.0.1 until the test
// ends, and returns the listener.
func serveLoopback(t *testing.T, s *demux.Server) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		waitFor(t, served, 10*time.Second, "Serve to return after Close")
	})
	return ln
}
