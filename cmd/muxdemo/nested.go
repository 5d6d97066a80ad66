package main

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
)

// stampMethod is the method the client side serves in -nested mode: the
// server's echo handlers call it back, over the stream their request came
// on, before they answer.
const stampMethod = "client.stamp"

// stamp is what stampMethod returns, and what the server puts in its reply
// so that the caller can check the nested call was made for it: the
// caller's id and sequence number and the method, as the server passed
// them on, a digest of the payload it passed on, and the client connection
// that served the callback.
type stamp struct {
	Caller int    `msgpack:"caller"`
	Seq    uint64 `msgpack:"seq"`
	Method string `msgpack:"method"`
	Digest uint64 `msgpack:"digest"`
	Conn   int    `msgpack:"conn"`
}

// stampOf returns the stamp that the callback for args, served on client
// connection conn, must give.
func stampOf(args *message, conn int) stamp {
	h := fnv.New64a()
	h.Write(args.Payload)
	return stamp{Caller: args.Caller, Seq: args.Seq, Method: args.Method, Digest: h.Sum64(), Conn: conn}
}

// clientOptions returns the options of the Mux of client connection conn:
// in -nested mode it serves stampMethod, counting each callback in st;
// otherwise it only calls.
func clientOptions(cfg config, conn int, st *stats) []mux.Option {
	if !cfg.Nested {
		return nil
	}
	r := demux.NewRouter()
	r.Handle(stampMethod, demux.Func(func(_ context.Context, args message) (stamp, error) {
		st.callbacks.Add(1)
		return stampOf(&args, conn), nil
	}))
	return []mux.Option{demux.Handle(r)}
}

// callBack is what an echo handler does first in -nested mode: it calls
// stampMethod on the side that sent args, through the Mux of the
// connection ctx's request came on, and returns the stamp it got.
func callBack(ctx context.Context, args *message) (*stamp, error) {
	m, ok := mux.FromContext(ctx)
	if !ok {
		return nil, fmt.Errorf("caller %d call %d: no connection to call back", args.Caller, args.Seq)
	}
	var s stamp
	if err := m.Call(ctx, stampMethod, args, &s); err != nil {
		return nil, fmt.Errorf("caller %d call %d: calling back %s: %w", args.Caller, args.Seq, stampMethod, err)
	}
	return &s, nil
}
