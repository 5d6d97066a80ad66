// Package rpctest starts a Mux and a DeMux over a real transport for tests
// and tears them down, checking that nothing is left running.
package rpctest

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// Kinds are the transports behaviour tests run over.
var Kinds = []transport.Kind{transport.Pipe, transport.TCP}

// Pair is a Mux connected to a DeMux that serves in the background.
type Pair struct {
	Mux   *mux.Mux
	DeMux *demux.DeMux
	done  chan error
}

// Start connects a Mux to a DeMux serving h over a transport of the given
// kind. Cleanup closes both and waits for Serve to return.
func Start(t testing.TB, kind transport.Kind, h demux.Handler, dopts []demux.Option, mopts ...mux.Option) *Pair {
	t.Helper()
	c, s, err := transport.Pair(kind)
	if err != nil {
		t.Fatalf("transport %s: %v", kind, err)
	}
	p := &Pair{
		Mux:   mux.New(c, mopts...),
		DeMux: demux.New(s, h, dopts...),
		done:  make(chan error, 1),
	}
	go func() { p.done <- p.DeMux.Serve() }()
	t.Cleanup(func() {
		p.Mux.Close()
		p.DeMux.Close()
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(cleanupLimit):
			t.Errorf("after %v: the DeMux's Serve did not return once both ends were closed", cleanupLimit)
		}
	})
	return p
}

// cleanupLimit bounds how long Start's cleanup waits for Serve to return.
const cleanupLimit = 10 * time.Second

// Wait waits for Serve to return and returns its error. It may be called
// more than once.
func (p *Pair) Wait() error {
	err := <-p.done
	p.done <- err
	return err
}

// IsHangUp reports whether err is how a stream ends when its peer closes
// it: io.EOF, or a TCP reset when the peer closed with data unread.
func IsHangUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// Each runs fn as a subtest for every kind in Kinds.
func Each(t *testing.T, fn func(t *testing.T, kind transport.Kind)) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) { fn(t, kind) })
	}
}

// Blocker is a handler that parks every request until its context ends or
// Release is called, announcing each one on Started.
type Blocker struct {
	Started chan string // receives the method of each request that starts
	gate    chan struct{}
}

// NewBlocker returns a Blocker whose Started has room for n announcements.
func NewBlocker(n int) *Blocker {
	return &Blocker{Started: make(chan string, n), gate: make(chan struct{})}
}

// Release lets every parked and future request return.
func (b *Blocker) Release() { close(b.gate) }

// ServeRPC implements demux.Handler. It returns "released", or the
// context's error.
func (b *Blocker) ServeRPC(ctx context.Context, req *demux.Request) (any, error) {
	b.Started <- req.Method
	select {
	case <-b.gate:
		return "released", nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
