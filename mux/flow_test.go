package mux_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// flowEcho answers with the priority and key its request came with.
func flowEcho(notified chan<- string) demux.Handler {
	return demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
		s := fmt.Sprintf("%v/%s", req.Priority, req.Key)
		if req.Notify {
			notified <- s
		}
		return s, nil
	})
}

func TestPriorityAndKeyReachTheHandler(t *testing.T) {
	notified := make(chan string, 1)
	p := rpctest.Start(t, transport.Pipe, flowEcho(notified), nil)
	bg := rpctest.Context(t)
	for _, tc := range []struct {
		ctx  context.Context
		want string
	}{
		{bg, "normal/"},
		{mux.WithPriority(bg, mux.PriorityUrgent), "urgent/"},
		{mux.WithPriority(bg, mux.PriorityLow), "low/"},
		{mux.WithPriority(bg, 9), "urgent/"},
		{mux.WithKey(bg, "k"), "normal/k"},
		{mux.WithPriority(mux.WithKey(bg, "k"), mux.PriorityHigh), "high/k"},
		{mux.WithKey(mux.WithPriority(bg, mux.PriorityHigh), "k2"), "high/k2"},
		{mux.WithKey(mux.WithKey(bg, "k"), ""), "normal/"},
		{mux.WithKey(bg, strings.Repeat("x", frame.MaxKeyLen)), "normal/" + strings.Repeat("x", frame.MaxKeyLen)},
	} {
		var got string
		require.NoError(t, p.Mux.Call(tc.ctx, "m", nil, &got))
		assert.Equal(t, tc.want, got)
		require.NoError(t, p.Mux.Notify(tc.ctx, "m", nil))
		assert.Equal(t, tc.want, rpctest.Await(t, notified, "the notification did not run"))
	}
}

func TestTooLongKeyFailsBeforeSending(t *testing.T) {
	var ran atomic.Int32
	p := rpctest.Start(t, transport.Pipe, demux.HandlerFunc(func(context.Context, *demux.Request) (any, error) {
		ran.Add(1)
		return nil, nil
	}), nil)
	ctx := mux.WithKey(rpctest.Context(t), strings.Repeat("x", frame.MaxKeyLen+1))
	check := func(how string, err error) {
		t.Helper()
		assert.True(t, errors.Is(err, mux.ErrNotSent), "%s: %v does not wrap ErrNotSent", how, err)
		assert.ErrorContains(t, err, "ordering key of 256 bytes", how)
	}
	check("Call", p.Mux.Call(ctx, "m", nil, nil))
	check("Notify", p.Mux.Notify(ctx, "m", nil))
	c := p.Mux.Go(ctx, "m", nil, nil)
	rpctest.Await(t, c.Done(), "the Go call failed")
	check("Go", c.Err())
	require.NoError(t, p.Mux.Call(rpctest.Context(t), "m", nil, nil), "the Mux goes on")
	assert.Equal(t, int32(1), ran.Load(), "a handler ran for a request with a too long key")
}

func TestRequestAndCancelCarryPriorityAndKeyOnTheWire(t *testing.T) {
	m, srv := fakeServer(t, transport.Pipe)
	srv.Preface()
	require.NoError(t, srv.R.ReadPreface())
	ctx, cancel := context.WithCancel(mux.WithKey(mux.WithPriority(context.Background(), mux.PriorityHigh), "k"))
	c := m.Go(ctx, "x", nil, nil)
	req := srv.Read()
	assert.Equal(t, frame.PriorityHigh, req.Flags.Priority(), "request %v", &req)
	assert.NotZero(t, req.Flags&frame.FlagKey, "request %v", &req)
	assert.Equal(t, "k", req.Key)
	cancel()
	rpctest.Await(t, c.Done(), "the canceled call did not finish")
	f := srv.Read()
	assert.Equal(t, frame.TypeCancel, f.Type)
	assert.Equal(t, req.XID, f.XID)
	assert.Equal(t, frame.PriorityHigh, f.Flags.Priority(), "cancel %v", &f)

	require.NoError(t, m.Notify(context.Background(), "plain", nil))
	plain := srv.Read()
	assert.Zero(t, plain.Flags, "a call without priority or key: %v", &plain)
}
