// Package transport makes connected pairs of net.Conns over the transports
// the peer benchmark runs on, each end wrapped so that its Read and Write
// calls are counted.
package transport

import (
	"io"
	"net"
	"sync/atomic"
	"time"

	libtransport "github.com/muxrpc/muxrpc/internal/transport"
)

// Kind names a transport.
type Kind string

// The transports.
const (
	Mem  Kind = "mem"  // net.Pipe: synchronous, in memory, no syscalls
	Pipe Kind = "pipe" // channel.Pipe: two OS pipes, wrapped as a net.Conn
	Unix Kind = "unix" // a unix stream socket
	TCP  Kind = "tcp"  // TCP over 127.0.0.1
)

// All lists every transport in the order results are reported.
var All = []Kind{Mem, Pipe, Unix, TCP}

// Counts are the transport calls made on one pair, both ends together.
// Each counter sits on its own cache line, as the four are bumped by
// different goroutines.
type Counts struct {
	reads  paddedCounter
	writes paddedCounter
}

type paddedCounter struct {
	n atomic.Int64
	_ [56]byte
}

// Reads returns the Read calls made so far on either end.
func (c *Counts) Reads() int64 { return c.reads.n.Load() }

// Writes returns the Write calls made so far on either end.
func (c *Counts) Writes() int64 { return c.writes.n.Load() }

// Pair returns two connected ends, client and server, both counting their
// Read and Write calls into counts. Closing either end makes the other's
// reads fail once buffered data is consumed.
func Pair(kind Kind, counts *Counts) (client, server net.Conn, err error) {
	// The library's test transports make the pair; this package adds the
	// net.Conn face some peers need and the counting.
	a, b, err := libtransport.Pair(libtransport.Kind(kind))
	if err != nil {
		return nil, nil, err
	}
	c, s := asConn(a, "pipe-client"), asConn(b, "pipe-server")
	return &countingConn{Conn: c, counts: counts}, &countingConn{Conn: s, counts: counts}, nil
}

// asConn returns rwc as a net.Conn: sockets and net.Pipe ends already are;
// OS pipes get an adapter.
func asConn(rwc io.ReadWriteCloser, name string) net.Conn {
	if c, ok := rwc.(net.Conn); ok {
		return c
	}
	return &rwcConn{ReadWriteCloser: rwc, name: name}
}

// countingConn counts the Read and Write calls that reach the transport.
type countingConn struct {
	net.Conn
	counts *Counts
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.counts.reads.n.Add(1)
	return c.Conn.Read(b)
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.counts.writes.n.Add(1)
	return c.Conn.Write(b)
}

// rwcConn makes one end of channel.Pipe a net.Conn: deadlines are accepted
// and ignored, and both addresses are a fixed name.
type rwcConn struct {
	io.ReadWriteCloser
	name string
}

func (c *rwcConn) LocalAddr() net.Addr              { return pipeAddr(c.name) }
func (c *rwcConn) RemoteAddr() net.Addr             { return pipeAddr(c.name) }
func (c *rwcConn) SetDeadline(time.Time) error      { return nil }
func (c *rwcConn) SetReadDeadline(time.Time) error  { return nil }
func (c *rwcConn) SetWriteDeadline(time.Time) error { return nil }

type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }
