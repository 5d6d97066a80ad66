package mux_test

import (
	"context"
	"io"
	"testing"

	"github.com/muxrpc/muxrpc/channel"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
)

// FuzzMux plays a server that answers three pending calls with arbitrary
// bytes after its preface: every call must finish, with its reply or an
// error, once the stream ends, and nothing may panic or stay behind.
func FuzzMux(f *testing.F) {
	// A fresh Mux's first calls get slots 1, 2 and 3, each on its first use
	// (see PROTOCOL.md, section 13).
	const x1, x2, x3 = 1<<32 | 1, 1<<32 | 2, 1<<32 | 3
	f.Add(rpctest.Frames(rpctest.Response(x1, "one"), rpctest.Response(x2, 2), rpctest.Response(x3, nil)))
	f.Add(rpctest.Frames(rpctest.Response(x2, "two"), frame.Frame{Type: frame.TypeError, XID: x1,
		Err: &frame.RemoteError{Code: frame.CodePanic, Message: "boom", Trace: "stack"}}))
	f.Add(rpctest.Frames(frame.Frame{Type: frame.TypeGoAway, Err: &frame.RemoteError{Code: frame.CodeShutdown}},
		rpctest.Response(x3, []any{1, "x"})))
	f.Add(rpctest.Frames(frame.Frame{Type: frame.TypeResponse, XID: x1, Payload: []byte{0xdf, 0xff, 0xff, 0xff, 0xff}}))
	f.Add(rpctest.Frames(rpctest.Response(99, "stray"), rpctest.Request(x1, "x", nil)))
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, s, err := channel.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		m := mux.New(c, mux.MaxFrameSize(1<<16))
		calls := make([]*mux.Call, 3)
		for i := range calls {
			calls[i] = m.Go(context.Background(), "x", i, new(any))
		}
		drained := make(chan struct{})
		go func() { // read the requests so that the Mux's writes never block
			io.Copy(io.Discard, s)
			close(drained)
		}()
		s.Write(frame.Preface[:])
		s.Write(data)
		s.Close()
		for _, call := range calls {
			rpctest.Await(t, call.Done(), "a call did not finish once the stream ended")
		}
		m.Close()
		rpctest.Await(t, drained, "the peer did not see the stream end after Close")
	})
}
