// Package mux is the calling side of muxrpc: many goroutines call remote
// methods over one byte stream at once, each parked on its own transaction
// id (xid) until its reply arrives.
//
// A [Mux] is made with [New] over any io.ReadWriteCloser whose other end is
// served by a demux.DeMux, with [Dial] over a network connection, or with
// [Start] over the stdin and stdout of a child process that serves a
// demux.DeMux over channel.Stdio; closing that Mux shuts the child down and
// reaps it. [Mux.Call] blocks until the reply, an error or
// the end of its context; [Mux.Go] starts a call and returns at once;
// [Mux.Notify] sends a request that gets no reply. Arguments and replies are
// encoded with msgpack.
//
// Errors fall into three kinds that errors.Is and errors.As tell apart:
//   - what the remote handler failed with, a *frame.RemoteError carrying a
//     frame.Code (and for panics the remote stack);
//   - the caller's own context ending: errors.Is(err, ctx.Err()) holds;
//   - the stream ending: errors.Is(err, ErrClosed) holds, and the error
//     wraps the cause, such as io.EOF or frame.ErrMalformed.
//
// A Mux has one goroutine of its own, the reader, which Close stops and
// waits for; the writer belongs to the package channel Conn under it, and a
// Mux made by Start has one more while Close reaps the child. Callers never
// get a goroutine each.
package mux
