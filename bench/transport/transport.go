// Package transport makes connected pairs of net.Conns over the transports
// the peer benchmark runs on, each end wrapped so that its Read and Write
// calls are counted.
package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/muxrpc/muxrpc/channel"
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
	var c, s net.Conn
	switch kind {
	case Mem:
		c, s = net.Pipe()
	case Pipe:
		a, b, err := channel.Pipe()
		if err != nil {
			return nil, nil, err
		}
		c = &rwcConn{ReadWriteCloser: a, name: "pipe-client"}
		s = &rwcConn{ReadWriteCloser: b, name: "pipe-server"}
	case TCP:
		c, s, err = dial("tcp", "127.0.0.1:0")
	case Unix:
		dir, derr := os.MkdirTemp("", "peerbench")
		if derr != nil {
			return nil, nil, derr
		}
		defer os.RemoveAll(dir) // the socket file is not needed once connected
		c, s, err = dial("unix", filepath.Join(dir, "s"))
	default:
		return nil, nil, fmt.Errorf("transport: unknown kind %q", kind)
	}
	if err != nil {
		return nil, nil, err
	}
	return &countingConn{Conn: c, counts: counts}, &countingConn{Conn: s, counts: counts}, nil
}

// dial listens on addr, connects to it and returns both ends.
func dial(network, addr string) (client, server net.Conn, err error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	client, err = net.Dial(network, ln.Addr().String())
	a := <-ch
	if err != nil || a.err != nil {
		if client != nil {
			client.Close()
		}
		if a.c != nil {
			a.c.Close()
		}
		return nil, nil, errors.Join(err, a.err)
	}
	return client, a.c, nil
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
