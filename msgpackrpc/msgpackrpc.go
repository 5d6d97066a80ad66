package msgpackrpc

import (
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/core"
	"github.com/muxrpc/muxrpc/mux"
)

// Dialect makes a connection speak msgpack-rpc (frame.MsgpackRPC). It is
// a mux.Option and a demux.Option alike: give it to mux.New, mux.Dial,
// mux.Start, demux.New or demux.NewServer. Options that need frames
// msgpack-rpc lacks do nothing (Keepalive) or fail the connection
// (AuthKey); the frame size limit (MaxFrameSize) bounds each message.
func Dialect() mux.Option {
	return func(c *core.Config) { c.Channel.Codec = frame.MsgpackRPC }
}
