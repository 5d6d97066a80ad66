package faulttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/toxitest"
	"github.com/muxrpc/muxrpc/mux"
	"go.uber.org/goleak"
)

// toxiproxy runs as a process of its own: goleak sees only this one.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// failBound bounds how long calls may take to fail once a fault that ends
// the stream is in place.
const failBound = 5 * time.Second

// TestLatency makes 200 calls at once through a 50 ms downstream latency:
// each gets its own reply, and the median call takes longer than the
// latency (the toxic is in effect).
func TestLatency(t *testing.T) {
	const (
		n       = 200
		latency = 50 * time.Millisecond
	)
	p := setup(t, newRouter(nil))
	p.AddToxic(t, "latency", "latency", toxitest.Downstream, toxitest.Attrs{"latency": latency.Milliseconds()})
	m := dial(t, p)

	durs := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			arg := fmt.Appendf(nil, "call %d", i)
			var reply []byte
			start := time.Now()
			err := m.Call(context.Background(), "echo", arg, &reply)
			durs[i] = time.Since(start)
			if err == nil && !bytes.Equal(reply, arg) {
				err = fmt.Errorf("reply %q, want %q", reply, arg)
			}
			errs[i] = err
		}()
	}
	waitFor(t, wgDone(&wg), 10*time.Second, "%d calls through a %v latency to return", n, latency)
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	slices.Sort(durs)
	p50, p99 := durs[n/2], durs[n*99/100]
	t.Logf("%d calls through %v downstream latency: p50 %v, p99 %v, max %v", n, latency, p50, p99, durs[n-1])
	if p50 <= latency {
		t.Errorf("p50 %v is not above the toxic's latency %v: was the toxic in effect?", p50, latency)
	}
}

// TestBandwidth fetches a 256 KiB reply through a 100 KB/s downstream: it
// arrives intact, and with keepalive short on both sides (100 ms, 300 ms)
// the slow but moving transfer is not taken for a dead peer.
func TestBandwidth(t *testing.T) {
	const (
		size = 256 << 10
		rate = 100 // KB/s, as toxiproxy counts: 1000 bytes a second each
	)
	want := pattern(size, 1)
	// The toxic cannot pass the reply faster than its rate; allow a
	// little for the first chunk.
	minTime := size * time.Second / (rate * 1000) * 8 / 10
	for _, tc := range []struct {
		name  string
		sopts []demux.Option
		mopts []mux.Option
	}{
		{"defaults", nil, nil},
		{"keepalive", // relies on keepalive enforcement (package channel)
			[]demux.Option{demux.Keepalive(100*time.Millisecond, 300*time.Millisecond)},
			[]mux.Option{mux.Keepalive(100*time.Millisecond, 300*time.Millisecond)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := setup(t, newRouter(nil), tc.sopts...)
			p.AddToxic(t, "bandwidth", "bandwidth", toxitest.Downstream, toxitest.Attrs{"rate": rate})
			m := dial(t, p, tc.mopts...)

			var reply []byte
			var err error
			done := make(chan struct{})
			start := time.Now()
			go func() {
				defer close(done)
				err = m.Call(context.Background(), "blob", size, &reply)
			}()
			waitFor(t, done, 15*time.Second, "a %d-byte reply through %d KB/s", size, rate)
			elapsed := time.Since(start)
			if errors.Is(err, channel.ErrUnresponsive) {
				t.Fatalf("the slow transfer was declared dead after %v: %v", elapsed, err)
			}
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if i := firstDiff(reply, want); i >= 0 {
				t.Fatalf("reply of %d bytes differs from the %d sent at byte %d", len(reply), len(want), i)
			}
			t.Logf("%d bytes through %d KB/s downstream in %v (%.0f KB/s)",
				size, rate, elapsed.Round(time.Millisecond), float64(size)/1000/elapsed.Seconds())
			if elapsed < minTime {
				t.Errorf("took %v, under the %v the toxic allows: was it in effect?", elapsed, minTime)
			}
			if err := m.Err(); err != nil {
				t.Fatalf("the Mux ended after the transfer: %v", err)
			}
			var echo []byte
			if err := m.Call(rpctest.Context(t), "echo", []byte("after"), &echo); err != nil || string(echo) != "after" {
				t.Fatalf("a call after the transfer: %q, %v", echo, err)
			}
		})
	}
}

// TestSlicer makes 200 calls at once, with payloads of 0 to 4095 bytes,
// through toxiproxy's slicer in both directions (slices of 16 to 48
// bytes, 10 µs apart), so that frames arrive split at every place: each
// call gets its own payload back.
func TestSlicer(t *testing.T) {
	const n = 200
	p := setup(t, newRouter(nil))
	attrs := toxitest.Attrs{"average_size": 32, "size_variation": 16, "delay": 10}
	p.AddToxic(t, "slicer-up", "slicer", toxitest.Upstream, attrs)
	p.AddToxic(t, "slicer-down", "slicer", toxitest.Downstream, attrs)
	m := dial(t, p)

	errs := make([]error, n)
	total := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		arg := pattern(i*i*31%4096, byte(i))
		total += len(arg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var reply []byte
			err := m.Call(context.Background(), "echo", arg, &reply)
			if err == nil {
				if j := firstDiff(reply, arg); j >= 0 {
					err = fmt.Errorf("reply of %d bytes differs from the %d sent at byte %d", len(reply), len(arg), j)
				}
			}
			errs[i] = err
		}()
	}
	waitFor(t, wgDone(&wg), 30*time.Second, "%d calls through the slicer to return", n)
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	t.Logf("%d calls, %d payload bytes each way, sliced both ways, in %v", n, total, time.Since(start).Round(time.Millisecond))
}

// TestResetPeer parks 50 calls on the server, then has toxiproxy reset
// both TCP connections (RST): every call fails promptly with an error
// wrapping mux.ErrClosed, Done closes, and the server cancels the
// handlers.
func TestResetPeer(t *testing.T) {
	const n = 50
	pk := newParker(n + 1)
	p := setup(t, newRouter(pk))
	// Toxiproxy makes closing send RST only on connections made while a
	// reset_peer toxic is in the chain: add it dormant, wake it later.
	p.AddToxic(t, "reset", "reset_peer", toxitest.Upstream, toxitest.Attrs{"timeout": 0})
	p.SetToxicity(t, "reset", 0)
	m := dial(t, p)
	calls := park(t, m, pk, n)

	start := time.Now()
	p.SetToxicity(t, "reset", 1)
	// The toxic acts on the next bytes from the client: this call's.
	calls = append(calls, m.Go(context.Background(), "park", struct{}{}, nil))

	waitFor(t, callsDone(calls), failBound, "the calls to fail after the reset")
	detect := time.Since(start)
	for i, c := range calls {
		if err := c.Err(); !errors.Is(err, mux.ErrClosed) {
			t.Errorf("call %d: %v, want an error wrapping mux.ErrClosed", i, err)
		}
	}
	waitFor(t, m.Done(), failBound, "Done to close after the reset")
	t.Logf("%d calls failed %v after the reset was armed: %v", len(calls), detect.Round(time.Millisecond), calls[0].Err())
	waitCanceled(t, pk, n, "after the reset")
}

// TestLimitData answers 20 calls, then lets the server send only 3000
// more bytes before toxiproxy closes the connection, while 100 calls with
// 200-byte replies are in flight: those answered before the cut get
// their replies, the others fail with an error wrapping mux.ErrClosed,
// none hangs, and the 20 earlier calls stay answered.
func TestLimitData(t *testing.T) {
	const (
		before = 20
		n      = 100
		limit  = 3000
	)
	p := setup(t, newRouter(nil))
	m := dial(t, p)

	type call struct {
		c     *mux.Call
		arg   []byte
		reply []byte
	}
	start := func(i int) *call {
		c := &call{arg: pattern(200, byte(i))}
		c.c = m.Go(context.Background(), "echo", c.arg, &c.reply)
		return c
	}
	check := func(c *call) error {
		if err := c.c.Err(); err != nil {
			return err
		}
		if !bytes.Equal(c.reply, c.arg) {
			return fmt.Errorf("reply %x, want %x", c.reply, c.arg)
		}
		return nil
	}
	var answered []*call
	for i := range before {
		c := start(i)
		waitFor(t, c.c.Done(), 5*time.Second, "call %d before the toxic", i)
		if err := check(c); err != nil {
			t.Fatalf("call %d before the toxic: %v", i, err)
		}
		answered = append(answered, c)
	}

	p.AddToxic(t, "limit", "limit_data", toxitest.Downstream, toxitest.Attrs{"bytes": limit})
	var inFlight []*call
	var dones []*mux.Call
	for i := range n {
		c := start(before + i)
		inFlight = append(inFlight, c)
		dones = append(dones, c.c)
	}
	waitFor(t, callsDone(dones), failBound, "the %d calls in flight to end once %d bytes passed", n, limit)
	ok, closed := 0, 0
	for i, c := range inFlight {
		switch err := check(c); {
		case err == nil:
			ok++
		case errors.Is(err, mux.ErrClosed):
			closed++
		default:
			t.Errorf("call %d in flight: %v, want its reply or an error wrapping mux.ErrClosed", i, err)
		}
	}
	if closed == 0 {
		t.Errorf("all %d calls were answered: the limit of %d bytes was not in effect", n, limit)
	}
	waitFor(t, m.Done(), failBound, "Done to close once the connection was cut")
	for i, c := range answered {
		if err := check(c); err != nil {
			t.Errorf("call %d, answered before the toxic: now %v", i, err)
		}
	}
	t.Logf("after %d answered calls and a %d-byte limit: %d of %d calls in flight answered, %d failed: %v",
		before, limit, ok, n, closed, m.Err())
}

// TestBlackhole parks 50 calls, then has toxiproxy drop every byte both
// ways without closing anything (a timeout toxic with timeout 0). With
// keepalive at 100 ms and 300 ms on the client, every call, though it
// has no deadline, fails within failBound with an error wrapping both
// mux.ErrClosed and channel.ErrUnresponsive, and Done closes.
//
// This relies on keepalive enforcement in package channel.
func TestBlackhole(t *testing.T) {
	const n = 50
	pk := newParker(n)
	p := setup(t, newRouter(pk))
	m := dial(t, p, mux.Keepalive(100*time.Millisecond, 300*time.Millisecond))
	calls := park(t, m, pk, n)

	start := time.Now()
	p.AddToxic(t, "blackhole-up", "timeout", toxitest.Upstream, toxitest.Attrs{"timeout": 0})
	p.AddToxic(t, "blackhole-down", "timeout", toxitest.Downstream, toxitest.Attrs{"timeout": 0})

	waitFor(t, callsDone(calls), failBound, "%d parked calls to fail once the peer went silent", n)
	detect := time.Since(start)
	for i, c := range calls {
		if err := c.Err(); !errors.Is(err, mux.ErrClosed) || !errors.Is(err, channel.ErrUnresponsive) {
			t.Errorf("call %d: %v, want an error wrapping mux.ErrClosed and channel.ErrUnresponsive", i, err)
		}
	}
	waitFor(t, m.Done(), failBound, "Done to close once the peer went silent")
	t.Logf("blackhole detected in %v with keepalive 100ms/300ms: %v", detect.Round(time.Millisecond), m.Err())
}

// setup starts toxiproxy, a demux.Server for h on 127.0.0.1 with opts,
// and a proxy to it. Cleanup closes the Server and then stops toxiproxy.
func setup(t *testing.T, h demux.Handler, opts ...demux.Option) *toxitest.Proxy {
	t.Helper()
	toxi := toxitest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := demux.NewServer(h, opts...)
	var serveErr error
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveErr = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		waitFor(t, served, 10*time.Second, "Serve to return after Close")
		if !errors.Is(serveErr, demux.ErrServerClosed) {
			t.Errorf("Serve: %v, want ErrServerClosed", serveErr)
		}
	})
	return toxi.NewProxy(t, "muxrpc", ln.Addr().String())
}

// dial connects a Mux to p's listen address; cleanup closes it.
func dial(t *testing.T, p *toxitest.Proxy, opts ...mux.Option) *mux.Mux {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := mux.Dial(ctx, "tcp", p.Listen, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// newRouter serves "echo" ([]byte back), "blob" (n bytes of pattern(n,
// 1)) and, if pk is not nil, "park" (pk.handle).
func newRouter(pk *parker) *demux.Router {
	r := demux.NewRouter()
	r.Handle("echo", demux.Func(func(_ context.Context, b []byte) ([]byte, error) { return b, nil }))
	r.Handle("blob", demux.Func(func(_ context.Context, n int) ([]byte, error) {
		if n < 0 || n > 1<<20 {
			return nil, fmt.Errorf("blob of %d bytes: want 0 to 1 MiB", n)
		}
		return pattern(n, 1), nil
	}))
	if pk != nil {
		r.Handle("park", demux.HandlerFunc(pk.handle))
	}
	return r
}

// parker is a handler that announces each request, waits for its context
// to end and announces that too.
type parker struct {
	started  chan struct{}
	canceled chan struct{}
}

// newParker returns a parker with room for n announcements of each kind;
// more requests than that would wait to announce.
func newParker(n int) *parker {
	return &parker{started: make(chan struct{}, n), canceled: make(chan struct{}, n)}
}

func (pk *parker) handle(ctx context.Context, _ *demux.Request) (any, error) {
	pk.started <- struct{}{}
	<-ctx.Done()
	pk.canceled <- struct{}{}
	return nil, ctx.Err()
}

// park starts n calls of "park" without a deadline and waits until the
// server runs all n handlers.
func park(t *testing.T, m *mux.Mux, pk *parker, n int) []*mux.Call {
	t.Helper()
	calls := make([]*mux.Call, n)
	for i := range calls {
		calls[i] = m.Go(context.Background(), "park", struct{}{}, nil)
	}
	bound := time.NewTimer(10 * time.Second)
	defer bound.Stop()
	for i := range n {
		select {
		case <-pk.started:
		case <-bound.C:
			dump()
			t.Fatalf("%d of %d handlers started within 10s", i, n)
		}
	}
	return calls
}

// waitCanceled waits until n handlers of pk have seen their contexts end.
func waitCanceled(t *testing.T, pk *parker, n int, when string) {
	t.Helper()
	bound := time.NewTimer(failBound)
	defer bound.Stop()
	for i := range n {
		select {
		case <-pk.canceled:
		case <-bound.C:
			dump()
			t.Fatalf("%d of %d handlers saw their contexts end %s within %v", i, n, when, failBound)
		}
	}
}

// waitFor waits until done is closed. If bound passes first, it writes
// every goroutine's stack to stderr and fails the test, saying what it
// waited for.
func waitFor(t *testing.T, done <-chan struct{}, bound time.Duration, format string, args ...any) {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		dump()
		t.Fatalf("waited %v for %s", bound, fmt.Sprintf(format, args...))
	}
}

// dump writes every goroutine's stack to stderr.
func dump() {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	fmt.Fprintf(os.Stderr, "=== goroutines\n%s\n", buf[:n])
}

// wgDone returns a channel closed once wg's count is zero.
func wgDone(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// callsDone returns a channel closed once every call has finished.
func callsDone(calls []*mux.Call) <-chan struct{} {
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-c.Done()
		}()
	}
	return wgDone(&wg)
}

// pattern returns n bytes that depend on their offset and on seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>8)
	}
	return b
}

// firstDiff returns the first offset where got and want differ, or -1 if
// they are equal.
func firstDiff(got, want []byte) int {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return i
		}
	}
	if len(got) != len(want) {
		return min(len(got), len(want))
	}
	return -1
}
