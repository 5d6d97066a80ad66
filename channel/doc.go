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
// [Pipe] makes a connected pair of streams over OS pipes, the simplest
// transport to run a Mux and a DeMux over in one process or across a
// parent and its child.
package channel
