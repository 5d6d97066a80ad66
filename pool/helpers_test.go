package pool_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
	"github.com/muxrpc/muxrpc/pool"
)

// waitLimit bounds every wait in these tests; reaching it is the failure.
const waitLimit = rpctest.WaitLimit

// awaitGroup waits for wg or fails the test saying what did not happen.
func awaitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	rpctest.Await(t, done, what)
}

// eventually calls cond every few milliseconds until it holds, failing
// the test with what if it does not within waitLimit. It polls a state
// the test cannot be told of (a connection the Pool made in the
// background); the wait between polls is not what the test waits for.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", waitLimit, what)
		}
		<-tick.C
	}
}

// server is a demux.Server on loopback TCP answering "who" with its name,
// "work" as its work function decides (by default the name), streaming
// "count", and counting the requests it takes.
type server struct {
	name  string
	addr  string
	srv   *demux.Server
	calls atomic.Int64 // requests its handlers took
	work  atomic.Pointer[func(ctx context.Context) (string, error)]
	// started receives the name of the server each time work starts.
	started chan string
}

func startServer(t *testing.T, name string) *server {
	t.Helper()
	return startServerOn(t, name, nil, func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })
}

// startServers starts servers with the names given, which announce on one
// started channel.
func startServers(t *testing.T, names ...string) []*server {
	t.Helper()
	started := make(chan string, 64)
	var ss []*server
	for _, name := range names {
		ss = append(ss, startServerOn(t, name, started, func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }))
	}
	return ss
}

func startServerOn(t *testing.T, name string, started chan string, listen func() (net.Listener, error)) *server {
	t.Helper()
	if started == nil {
		started = make(chan string, 64)
	}
	s := &server{name: name, started: started}
	r := demux.NewRouter()
	r.Handle("who", demux.Func(func(context.Context, struct{}) (string, error) {
		s.calls.Add(1)
		return s.name, nil
	}))
	r.Handle("work", demux.Func(func(ctx context.Context, _ int) (string, error) {
		s.calls.Add(1)
		select {
		case s.started <- s.name:
		default:
		}
		if w := s.work.Load(); w != nil {
			return (*w)(ctx)
		}
		return s.name, nil
	}))
	// "count" yields 0 to n-1, running the work function before every
	// item but the first, and returns the server's name.
	r.Handle("count", demux.Func(func(ctx context.Context, n int) (string, error) {
		s.calls.Add(1)
		for i := range n {
			if w := s.work.Load(); w != nil && i > 0 {
				if _, err := (*w)(ctx); err != nil {
					return "", err
				}
			}
			if err := demux.Yield(ctx, i); err != nil {
				return "", err
			}
		}
		return s.name, nil
	}))
	ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.srv = demux.NewServer(r)
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		s.srv.Close()
		rpctest.Await(t, served, "the server's Serve did not return after Close")
	})
	return s
}

// setWork makes "work" run fn.
func (s *server) setWork(fn func(ctx context.Context) (string, error)) { s.work.Store(&fn) }

// overloaded is a work function that refuses as an overloaded server does.
func overloaded(context.Context) (string, error) {
	return "", &frame.RemoteError{Code: frame.CodeOverloaded, Message: "busy"}
}

// blockUntil is a work function that waits for gate or its context.
func blockUntil(gate <-chan struct{}, name string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		select {
		case <-gate:
			return name, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// fastKeepalive finds a dead peer in well under a second.
var fastKeepalive = pool.MuxOptions(mux.Keepalive(50*time.Millisecond, 200*time.Millisecond))

// dialPool makes a Pool over the servers with opts, closed at cleanup.
func dialPool(t *testing.T, servers []*server, opts ...pool.Option) *pool.Pool {
	t.Helper()
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	p, err := pool.Dial(ctx, "tcp", pool.Static(addrs...), append([]pool.Option{fastKeepalive, pool.Backoff(10*time.Millisecond, 100*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// resolverFunc adapts a function to pool.Resolver.
type resolverFunc func(ctx context.Context) ([]string, error)

func (f resolverFunc) Resolve(ctx context.Context) ([]string, error) { return f(ctx) }

// startServerAt is startServer on a given address, for a server that
// comes back where it was.
func startServerAt(t *testing.T, name, addr string) *server {
	t.Helper()
	return startServerOn(t, name, nil, func() (net.Listener, error) { return net.Listen("tcp", addr) })
}
