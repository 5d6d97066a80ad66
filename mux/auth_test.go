package mux_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

func TestAuthKey(t *testing.T) {
	key := []byte("a secret shared by both ends, 32+")
	other := []byte("another secret, just as long, 32+")
	cases := []struct {
		name             string
		client, server   []byte
		works            bool
		clientIs, servIs error
	}{
		{name: "same key", client: key, server: key, works: true},
		{name: "wrong key", client: other, server: key},
		{name: "client without a key", client: nil, server: key},
		{name: "server without a key", client: key, server: nil},
	}
	for _, kind := range []transport.Kind{transport.Pipe, transport.TCP} {
		for _, c := range cases {
			t.Run(string(kind)+"/"+c.name, func(t *testing.T) {
				cs, ss, err := transport.Pair(kind)
				require.NoError(t, err)
				var ran atomic.Int32
				h := demux.Func(func(_ context.Context, s string) (string, error) {
					ran.Add(1)
					return "hi " + s, nil
				})
				d := demux.New(ss, h, demux.AuthKey(c.server))
				served := make(chan error, 1)
				go func() { served <- d.Serve() }()
				m := mux.New(cs, mux.AuthKey(c.client))
				defer func() {
					m.Close()
					d.Close()
				}()
				var got string
				err = m.Call(rpctest.Context(t), "greet", "you", &got)
				if c.works {
					require.NoError(t, err)
					assert.Equal(t, "hi you", got)
					rpctest.Await(t, m.Ready(), "Ready was not closed after a call over an authenticated stream")
					return
				}
				require.Error(t, err)
				assert.ErrorIs(t, err, channel.ErrAuth, "the client names the failure")
				assert.ErrorIs(t, err, mux.ErrClosed)
				if c.client != nil {
					// A client with a key holds its requests until the
					// server has proved it has the key too. One without a
					// key sends at once: to it, the request may have run.
					assert.ErrorIs(t, err, mux.ErrNotSent, "no request left before authentication")
				}
				rpctest.Await(t, m.Done(), "the client's stream did not end")
				if c.client != nil {
					// A client without a key reads a good preface and
					// asks for nothing more: to it, the peer was ready.
					select {
					case <-m.Ready():
						t.Error("Ready was closed for a peer that failed the handshake")
					default:
					}
				}
				serr := rpctest.Await(t, served, "the server did not end the unauthenticated stream")
				assert.True(t, errors.Is(serr, channel.ErrAuth), "the server names the failure: %v", serr)
				assert.Zero(t, ran.Load(), "a handler ran for an unauthenticated peer")
			})
		}
	}
}

// TestReadyWaitsForThePeersPreface checks that Ready is closed only once
// the peer's preface has arrived and is good: not before, and never for a
// peer that speaks something else.
func TestReadyWaitsForThePeersPreface(t *testing.T) {
	notReady := func(t *testing.T, m *mux.Mux, why string) {
		t.Helper()
		select {
		case <-m.Ready():
			t.Error("Ready was closed " + why)
		default:
		}
	}
	t.Run("muxrpc peer", func(t *testing.T) {
		m, peer := fakeServer(t, transport.Pipe)
		require.NoError(t, peer.R.ReadPreface()) // the Mux is reading by now
		notReady(t, m, "before the peer's preface")
		peer.Preface()
		rpctest.Await(t, m.Ready(), "Ready was not closed after the peer's preface")
	})
	t.Run("something else", func(t *testing.T) {
		m, peer := fakeServer(t, transport.Pipe)
		peer.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		rpctest.Await(t, m.Done(), "the Mux did not end on a peer that is no muxrpc peer")
		assert.ErrorIs(t, m.Err(), frame.ErrBadPreface)
		notReady(t, m, "for a peer that is no muxrpc peer")
	})
}
