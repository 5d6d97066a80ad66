// Package demux is the serving side of muxrpc: it reads requests from one
// byte stream, runs a Handler for each, on a bounded pool of workers or on
// a goroutine per request, and writes every result or error back on the
// same stream to the caller that asked.
//
// A [DeMux] is made with [New] over any io.ReadWriteCloser whose other end
// is a mux.Mux, and runs with [DeMux.Serve]. A [Server] accepts connections
// on net.Listeners and serves each with a DeMux of its own, up to
// [MaxConns] at once, until [Server.Shutdown] or [Server.Close]. A
// [Router] maps method names to handlers; [Func] adapts a typed function
// into a Handler that decodes its msgpack arguments. A handler that passes
// bytes through reads them in place with [Request.Bytes].
//
// What a handler returns reaches the caller: a result is encoded with
// msgpack, an error becomes a *frame.RemoteError (CodeApplication unless the
// handler chose a code by returning a *frame.RemoteError itself), and a
// panic becomes CodePanic with the panic value and the handler's stack; the
// DeMux keeps serving.
//
// Concurrency is bounded twice: [Workers] fixes how many handlers run at
// once, and [MaxInFlight] how many requests may be queued or running. Past
// it the DeMux reads on and holds further requests, up to 1 MiB of them,
// so that it still sees the stream end when every handler waits for its
// context; beyond that it stops reading, so a fast client is slowed down by
// the transport instead of growing the server's memory.
package demux
