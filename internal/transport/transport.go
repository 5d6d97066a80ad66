// Package transport makes connected pairs of byte streams over the
// transports muxrpc is tested and benchmarked on: OS pipes, an in-memory
// pipe, TCP loopback and unix sockets.
package transport

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"github.com/muxrpc/muxrpc/channel"
)

// Kind names a transport.
type Kind string

// The transports.
const (
	Pipe Kind = "pipe" // channel.Pipe: two OS pipes
	Mem  Kind = "mem"  // net.Pipe: synchronous, in memory
	TCP  Kind = "tcp"  // TCP over 127.0.0.1
	Unix Kind = "unix" // a unix stream socket in a temporary directory
)

// All lists every transport.
var All = []Kind{Pipe, Mem, TCP, Unix}

// Pair returns two connected streams of the given kind: client for a Mux,
// server for a DeMux. Closing either end makes the other read io.EOF (or
// an error) once buffered data is consumed. Nothing else is left open once
// both are closed.
func Pair(kind Kind) (client, server io.ReadWriteCloser, err error) {
	switch kind {
	case Pipe:
		return channel.Pipe()
	case Mem:
		c, s := net.Pipe()
		return c, s, nil
	case TCP:
		return dial("tcp", "127.0.0.1:0")
	case Unix:
		dir, err := os.MkdirTemp("", "muxrpc")
		if err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(dir) // the socket file is not needed once connected
		return dial("unix", filepath.Join(dir, "s"))
	}
	return nil, nil, fmt.Errorf("transport: unknown kind %q", kind)
}

// dial listens on addr, connects to it and returns both ends.
func dial(network, addr string) (client, server io.ReadWriteCloser, err error) {
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
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		ln.Close()
		<-ch
		return nil, nil, err
	}
	a := <-ch
	if a.err != nil {
		c.Close()
		return nil, nil, a.err
	}
	return c, a.c, nil
}
