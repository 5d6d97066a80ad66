package mux_test

import (
	"context"
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// Short keepalive periods for tests: a dead peer is found within
// interval+timeout and a tick.
const (
	testInterval = 50 * time.Millisecond
	testTimeout  = 150 * time.Millisecond
)

func TestKeepaliveFindsASilentPeer(t *testing.T) {
	// The peer sends its preface and then nothing: it reads, but never
	// answers a PING. Calls without a deadline must not wait for ever.
	for _, kind := range []transport.Kind{transport.Pipe, transport.TCP} {
		t.Run(string(kind), func(t *testing.T) {
			c, s, err := transport.Pair(kind)
			require.NoError(t, err)
			defer s.Close()
			silent := rpctest.NewRaw(t, s)
			silent.Preface()
			go func() { // drain what the Mux sends, answering nothing
				var f frame.Frame
				if silent.R.ReadPreface() != nil {
					return
				}
				for silent.R.ReadFrame(&f) == nil {
					f.Release()
				}
			}()
			start := time.Now()
			m := mux.New(c, mux.Keepalive(testInterval, testTimeout))
			defer m.Close()
			const n = 20
			calls := make([]*mux.Call, n)
			for i := range calls {
				calls[i] = m.Go(context.Background(), "parked", i, nil)
			}
			rpctest.Await(t, m.Done(), "the Mux did not find its silent peer dead")
			t.Logf("a silent peer was found dead after %v (interval %v, timeout %v)", time.Since(start), testInterval, testTimeout)
			for _, call := range calls {
				rpctest.Await(t, call.Done(), "a call to the silent peer did not fail")
				assert.ErrorIs(t, call.Err(), mux.ErrClosed)
				assert.ErrorIs(t, call.Err(), channel.ErrUnresponsive)
			}
			assert.ErrorIs(t, m.Err(), channel.ErrUnresponsive)
		})
	}
}

func TestKeepaliveSparesABusyPeer(t *testing.T) {
	// A handler that runs for many keepalive periods, and a large reply on
	// the way: the peer answers PINGs from its reader, so the call
	// succeeds. Both ends run keepalive.
	for _, kind := range []transport.Kind{transport.Pipe, transport.TCP} {
		t.Run(string(kind), func(t *testing.T) {
			r := demux.NewRouter()
			r.Handle("slow", demux.Func(func(ctx context.Context, n int) ([]byte, error) {
				select {
				case <-time.After(10 * (testInterval + testTimeout)):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return make([]byte, n), nil
			}))
			p := rpctest.Start(t, kind, r, []demux.Option{demux.Keepalive(testInterval, testTimeout)},
				mux.Keepalive(testInterval, testTimeout))
			var got []byte
			require.NoError(t, p.Mux.Call(rpctest.Context(t), "slow", 8<<20, &got))
			assert.Len(t, got, 8<<20)
			assert.NoError(t, p.Mux.Err())
		})
	}
}

func TestKeepaliveFindsAFrozenChild(t *testing.T) {
	// SIGSTOP freezes the child: its pipes stay open, and nothing answers.
	m, cmd := startChild(t, "echo", mux.Keepalive(testInterval, testTimeout), mux.GracePeriod(100*time.Millisecond))
	echoOnce(t, m)
	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	defer cmd.Process.Signal(syscall.SIGCONT)
	start := time.Now()
	err := m.Call(rpctest.Context(t), "echo", echoArgs{Seq: 1}, nil)
	assert.ErrorIs(t, err, mux.ErrClosed)
	assert.ErrorIs(t, err, channel.ErrUnresponsive)
	t.Logf("a frozen child was found dead after %v", time.Since(start))
	rpctest.Await(t, m.Done(), "Done did not close")
	cmd.Process.Signal(syscall.SIGCONT)
	err = closeWithin(t, m)
	var exit interface{ ExitCode() int }
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("Close: %v", err)
	}
}
func TestHandshakeTimeout(t *testing.T) {
	// A peer that connects and sends nothing is cut off.
	c, s, err := transport.Pair(transport.TCP)
	require.NoError(t, err)
	defer c.Close()
	d := demux.New(s, echoRouter(), demux.HandshakeTimeout(100*time.Millisecond))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer d.Close()
	err = rpctest.Await(t, served, "the server waited for ever for a preface")
	assert.ErrorIs(t, err, channel.ErrTimeout)
}

func TestFrameTimeout(t *testing.T) {
	// A peer that starts a 16 MiB frame and stalls is cut off, and the
	// reader has not allocated what the length claims.
	c, s, err := transport.Pair(transport.TCP)
	require.NoError(t, err)
	defer c.Close()
	d := demux.New(s, echoRouter(), demux.FrameTimeout(100*time.Millisecond))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer d.Close()
	peer := rpctest.NewRaw(t, c)
	peer.Preface()
	head := binary.BigEndian.AppendUint32(nil, frame.DefaultMaxFrameSize)
	head = append(head, byte(frame.TypeRequest), 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 'e', 'c', 'h', 'o', 1, 2, 3)
	peer.Write(head)
	err = rpctest.Await(t, served, "the server waited for ever for the rest of a frame")
	assert.ErrorIs(t, err, channel.ErrTimeout)
}

func TestServerKeepaliveCancelsTheHandlersOfASilentClient(t *testing.T) {
	// The client sends a request and then goes silent: it answers no PING.
	c, s, err := transport.Pair(transport.TCP)
	require.NoError(t, err)
	defer c.Close()
	ended := make(chan error, 1)
	h := demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		<-ctx.Done()
		ended <- ctx.Err()
		return nil, ctx.Err()
	})
	d := demux.New(s, h, demux.Keepalive(testInterval, testTimeout))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	defer d.Close()
	silent := rpctest.NewRaw(t, c)
	silent.Preface()
	silent.Send(rpctest.Request(1, "wait", nil))
	err = rpctest.Await(t, served, "the server kept a silent client")
	assert.ErrorIs(t, err, channel.ErrUnresponsive)
	assert.ErrorIs(t, rpctest.Await(t, ended, "the handler's context was not canceled"), context.Canceled)
}

func TestKeepaliveFindsAPeerThatStopsReading(t *testing.T) {
	// The peer sends its preface and then neither reads nor writes: the
	// Mux's writer blocks in a large request, so its PING never leaves.
	c, s, err := transport.Pair(transport.Pipe)
	require.NoError(t, err)
	defer s.Close()
	rpctest.NewRaw(t, s).Preface()
	m := mux.New(c, mux.Keepalive(testInterval, testTimeout))
	defer m.Close()
	call := m.Go(context.Background(), "big", make([]byte, 8<<20), nil)
	rpctest.Await(t, call.Done(), "a call to a peer that stopped reading did not fail")
	assert.ErrorIs(t, call.Err(), channel.ErrUnresponsive)
}
