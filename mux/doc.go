// Package mux is the calling side of muxrpc: many goroutines call remote
// methods over one byte stream at once, each parked on its own transaction
// id (xid) until its reply arrives.
//
// A [Mux] is made with [New] over any io.ReadWriteCloser whose other end
// serves (a demux.DeMux, or a Mux that serves), with [Dial] over a network
// connection, or with [Start] over the stdin and stdout of a child process
// that serves a demux.DeMux over channel.Stdio; closing that Mux closes the
// child's stdin, waits for the child to exit (killing it after the
// [GracePeriod]) and returns its exit error. [Mux.Call] blocks until the
// reply, an error or the end of its context; [Mux.Go] starts a call and
// returns at once; [Mux.Notify] sends a request that gets no reply.
// [Mux.Done] and [Mux.Err] tell whether the stream is still alive without
// making a call. Arguments and replies are encoded with msgpack.
//
// A call's context may carry a [Priority] ([WithPriority]), which orders
// its request against waiting ones, and an ordering key ([WithKey]): the
// server runs the requests of one key one at a time, in arrival order.
// [Mux.GoFunc] calls a function once a call has finished, and a [Group]
// waits for a set of calls and returns the first error, canceling the
// others; neither needs a goroutine per call.
//
// Calls go both ways on one stream. Given demux.Handle(h) among its
// options, a Mux also serves the requests its peer sends, so two Muxes
// that both serve are peers that call each other. Inside a handler,
// [FromContext] returns the Mux of the handler's connection, to call back
// the peer whose request it serves, in the middle of the call or, keeping
// it, later (server push). Under every Mux and DeMux is one connection
// whose reader hands replies to the calling half and requests to the
// serving half without waiting for either, so replies keep arriving
// however busy this side's handlers are.
//
// Errors fall into three kinds that errors.Is and errors.As tell apart:
//   - what the remote handler failed with, a *frame.RemoteError carrying a
//     frame.Code (and for panics the remote stack);
//   - the caller's own context ending: errors.Is(err, ctx.Err()) holds;
//   - the stream ending: errors.Is(err, ErrClosed) holds, and the error
//     wraps the cause, such as io.EOF or frame.ErrMalformed.
//
// Mux.Stream makes a streaming call: the handler yields result items
// before its final result and the caller may send argument items, each
// direction flow-controlled per stream; Mux.CallProgress is a call whose
// handler reports progress. Messages longer than a chunk (ChunkSize) leave
// in chunks interleaved with other frames, so a small call never waits for
// a large one to be written; WithPriority and WithKey order calls.
//
// A Mux has one goroutine of its own, the reader, which Close stops and
// waits for; the writer belongs to the package channel Conn under it, and a
// Mux made by Start has one more while Close reaps the child. Callers never
// get a goroutine each. A Mux that serves runs its handlers on goroutines
// of its serving half, which Close also waits for.
package mux
