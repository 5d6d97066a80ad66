package mux_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
)

// serveOneTCP listens on a loopback port, serves echo with a DeMux on the
// first connection accepted, and returns the address and Serve's result.
func serveOneTCP(t *testing.T) (addr string, served <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- demux.New(conn, echoRouter()).Serve()
	}()
	return ln.Addr().String(), done
}

func TestDial(t *testing.T) {
	addr, served := serveOneTCP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := mux.Dial(ctx, "tcp", addr)
	require.NoError(t, err)
	for i := range 3 {
		var out echoArgs
		require.NoError(t, m.Call(ctx, "echo", echoArgs{Seq: i, Data: []byte("over TCP")}, &out))
		assert.Equal(t, i, out.Seq)
		assert.Equal(t, "over TCP", string(out.Data))
	}
	require.NoError(t, m.Close())
	select {
	case err := <-served:
		assert.True(t, rpctest.IsHangUp(err), "the server saw the client hang up, got %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server's Serve did not return after the Mux closed")
	}
}

func TestDialFailures(t *testing.T) {
	t.Run("closed port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m, err := mux.Dial(ctx, "tcp", addr)
		require.Error(t, err)
		assert.Nil(t, m)
		assert.ErrorContains(t, err, addr, "the error names the address")
	})
	t.Run("canceled context", func(t *testing.T) {
		addr, served := serveOneTCP(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m, err := mux.Dial(ctx, "tcp", addr)
		require.ErrorIs(t, err, context.Canceled)
		assert.Nil(t, m)
		assert.ErrorContains(t, err, addr, "the error names the address")
		select {
		case err := <-served:
			t.Fatalf("the server accepted a connection (Serve: %v)", err)
		default:
		}
	})
}
