package faulttest

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	defer func() {
		s.Close()
		<-served
	}()
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
