//go:build !race

// The race detector changes allocation counts, so this file is left out
// under -race.

package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/mux"
	"github.com/muxrpc/muxrpc/pool"
)

// poolAndMux returns a Pool and a Mux, each over its own connection to
// one server, both closed at cleanup.
func poolAndMux(t *testing.T) (*pool.Pool, *mux.Mux) {
	s := startServer(t, "a")
	p := dialPool(t, []*server{s})
	m, err := mux.Dial(context.Background(), "tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return p, m
}

// TestCallAllocatesNoMoreThanMux pins the Pool's hot path: a call through
// a Pool allocates what the same call through a Mux does, and nothing more.
func TestCallAllocatesNoMoreThanMux(t *testing.T) {
	p, m := poolAndMux(t)
	ctx := context.Background()
	var who string
	call := func(c interface {
		Call(ctx context.Context, method string, args, reply any) error
	}) func() {
		return func() {
			if err := c.Call(ctx, "work", 1, &who); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Client and server share the process: both sides' allocations count,
	// and the server's are the same either way.
	viaMux := testing.AllocsPerRun(200, call(m))
	viaPool := testing.AllocsPerRun(200, call(p))
	t.Logf("allocations per call: %.1f through a Mux, %.1f through a Pool", viaMux, viaPool)
	if viaPool > viaMux+0.5 {
		t.Errorf("a call through a Pool allocates %.1f times, through a Mux %.1f", viaPool, viaMux)
	}
}

// TestGoAllocatesLittleMoreThanMux pins Pool.Go: it allocates what
// mux.Mux.GoFunc does (one more than mux.Mux.Go, whose Calls are pooled)
// and its own Call, channel and callback, and starts no goroutine.
func TestGoAllocatesLittleMoreThanMux(t *testing.T) {
	p, m := poolAndMux(t)
	ctx := context.Background()
	var who string
	// One timer, reset for each wait: await's time.After would allocate,
	// and be counted with the call's allocations.
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	wait := func(done <-chan struct{}, err func() error) {
		limit.Reset(waitLimit)
		select {
		case <-done:
		case <-limit.C:
			t.Fatalf("after %v: a call started with Go did not finish", waitLimit)
		}
		if err := err(); err != nil {
			t.Fatal(err)
		}
	}
	viaMux := testing.AllocsPerRun(200, func() {
		c := m.Go(ctx, "work", 1, &who)
		wait(c.Done(), c.Err)
	})
	viaPool := testing.AllocsPerRun(200, func() {
		c := p.Go(ctx, "work", 1, &who)
		wait(c.Done(), c.Err)
	})
	t.Logf("allocations per Go: %.1f through a Mux, %.1f through a Pool", viaMux, viaPool)
	if viaPool > viaMux+4.5 {
		t.Errorf("Go through a Pool allocates %.1f times, through a Mux %.1f", viaPool, viaMux)
	}
}
