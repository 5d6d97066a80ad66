// Package channel owns the byte stream under a Mux or DeMux: it exchanges
// the prefaces, reads frames and hands them to its owner, and writes the
// frames its owner sends through one writer goroutine that coalesces them
// into few writes.
//
// A [Conn] has two goroutines while it serves: the one that called
// [Conn.Serve], which reads, and a writer that Serve starts and waits for.
// The first error on either side, or [Conn.Close], ends both: the stream is
// closed, which unblocks the reader, and Serve returns that first error.
//
// [Conn.Send] queues a frame for the writer and returns. The queue is
// bounded (Config.QueueBytes); while it is full, Sends wait in line and get
// in in the order they came, so a large frame is not starved by small ones
// that keep taking the room it waits for.
//
// A Conn also guards its stream, as its [Config] says: a watchdog
// goroutine ends it when the peer's preface or a started frame is overdue
// ([ErrTimeout]) or when, with keepalive on, the peer leaves a PING
// unanswered ([ErrUnresponsive]); the reader answers the peer's PINGs
// itself, ahead of the queued frames. With an AuthKey, both sides prove
// they hold the key before any other frame passes ([ErrAuth]).
//
// [Pipe] makes a connected pair of streams over OS pipes, the simplest
// transport to run a Mux and a DeMux over in one process. Across a parent
// and its child, the parent calls mux.Start, which runs the child with
// pipes on its stdin and stdout, and the child serves a DeMux over [Stdio].
package channel
