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
// A handler's context says where its request came from: [PeerFromContext]
// gives the connection's addresses and, over TLS, the peer's certificates,
// and mux.FromContext gives a mux.Mux that calls the peer back on the same
// stream. Serving is not tied to the DeMux: [Handle] given to mux.New,
// mux.Dial or mux.Start makes a Mux serve too, so that both ends of a
// stream call and serve; Workers and MaxInFlight given beside it configure
// the Mux's serving half.
//
// Concurrency is bounded twice: [Workers] fixes how many handlers run at
// once, and [MaxInFlight] how many requests may be queued or running. Past
// it the DeMux holds further requests, up to 1 MiB of them, and refuses
// the rest at once with CodeOverloaded, so that their callers know they did
// not run. The reader never stops to wait for a handler: it still sees
// CANCELs and the end of the stream, and the replies to a handler's calls
// back to the peer, however busy the handlers are. With Workers(n), a
// chain of nested calls back and forth that arrives at one side more than
// n times waits until its contexts end.
//
// Requests start in a fixed order. A waiting request of higher priority
// (the caller's mux.WithPriority, [Request.Priority]) starts before one of
// lower priority, and requests of one priority start in arrival order;
// but a priority that has had requests waiting while 8 requests of other
// priorities started goes next, so that however many requests of higher
// priority keep coming, the oldest of a lower one starts after at most 11
// others. The reply to a request carries its priority. Requests with an
// ordering key (mux.WithKey, [Request.Key]) run one at a time per key, in
// arrival order, like the messages of an actor's mailbox; requests with
// other keys or none run in parallel, all within the same Workers and
// MaxInFlight. A request waiting for the one before it with its key holds
// no worker and holds up no other request (it does count in MaxInFlight,
// as a queued request); it starts, at its own priority, once that one is
// done, so within one key arrival order wins over priority.
//
// A [Server] faces clients it may not trust, so its defaults bound what a
// client can hold without sending requests or while sending them slowly:
// [HandshakeTimeout] (10 s) and [FrameTimeout] (30 s) disconnect a client
// that stalls before its preface or in the middle of a frame,
// [TCPUserTimeout] (30 s) gives up on a peer that vanished while data was
// owed to it, and [MaxServerInFlight] and [MaxServerHeld] bound the
// requests of all connections together, as MaxInFlight does for one.
// [IdleTimeout] (off by default) shuts down a connection that has had no
// request for a while. A DeMux made with New has none of these unless they
// are given.
//
// When the client stops sending but can still read (TCP's CloseWrite, a
// parent closing a child's stdin), the requests already read are answered
// before Serve returns an error wrapping io.EOF.
//
// A handler whose caller made a stream (mux.Stream) may send result items
// before its final result with [Yield], and receive the caller's argument
// items with [Recv]; both are flow-controlled per stream, so a slow peer
// holds up this handler only. [Progress] sends a progress report to a
// caller that asked for them (mux.CallProgress) without ever waiting.
package demux
