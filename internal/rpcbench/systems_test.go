package rpcbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// echoClient is one client connected to an echo server over one stream.
type echoClient struct {
	// echo calls the server's echo method with in and stores the echoed
	// bytes in *out, reusing its capacity where the codec allows. It is
	// safe for concurrent use.
	echo func(in []byte, out *[]byte) error
	// close closes the client and the server and waits for the goroutines
	// it can wait for (see startNetrpc for the one it cannot).
	close func() error
}

// system is an RPC system under test.
type system struct {
	name  string
	start func(kind transport.Kind) (*echoClient, error)
}

// systems are the columns of BenchmarkCall.
var systems = []system{
	{"muxrpc", func(kind transport.Kind) (*echoClient, error) { return startMuxrpc(kind, echoBytes) }},
	{"muxrpc-func", func(kind transport.Kind) (*echoClient, error) { return startMuxrpc(kind, echoFunc) }},
	{"muxrpc-workers", func(kind transport.Kind) (*echoClient, error) {
		return startMuxrpc(kind, echoBytes, demux.Workers(64))
	}},
	{"netrpc", startNetrpc},
}

// echoBytes echoes its argument without copying it (Request.Bytes): what
// a server that passes bytes through would write.
var echoBytes = demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
	return req.Bytes()
})

// echoFunc is the typed way: the argument is decoded into a new []byte.
var echoFunc = demux.Func(func(_ context.Context, b []byte) ([]byte, error) {
	return b, nil
})

// muxrpcEcho routes the method "echo" to h.
func muxrpcEcho(h demux.Handler) *demux.Router {
	r := demux.NewRouter()
	r.Handle("echo", h)
	return r
}

// startMuxrpc connects a mux.Mux to a demux.DeMux serving echo with h over
// a fresh pair of streams of the given kind.
func startMuxrpc(kind transport.Kind, echo demux.Handler, opts ...demux.Option) (*echoClient, error) {
	cconn, sconn, err := transport.Pair(kind)
	if err != nil {
		return nil, err
	}
	d := demux.New(sconn, muxrpcEcho(echo), opts...)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	m := mux.New(cconn)
	ctx := context.Background()
	return &echoClient{
		echo: func(in []byte, out *[]byte) error {
			return m.Call(ctx, "echo", in, out)
		},
		close: func() error {
			// The client hangs up first, as it would in real life; the
			// server then reads io.EOF.
			errM := m.Close()
			errD := d.Close()
			var errS error
			select {
			case errS = <-served:
			case <-time.After(waitLimit):
				errS = fmt.Errorf("Serve did not return within %v of Close", waitLimit)
			}
			if errors.Is(errS, io.EOF) {
				errS = nil
			}
			return errors.Join(errM, errD, errS)
		},
	}, nil
}

// Echo is the net/rpc service.
type Echo struct{}

// Echo sets *reply to args.
func (Echo) Echo(args []byte, reply *[]byte) error {
	*reply = args
	return nil
}

// startNetrpc connects a net/rpc Client (gob) to a net/rpc Server with the
// Echo service over a fresh pair of streams of the given kind.
//
// close waits for the server's goroutines but cannot wait for the client's
// reading goroutine: net/rpc's Client.Close closes the stream and returns
// without waiting for it. It exits as soon as its read fails.
func startNetrpc(kind transport.Kind) (*echoClient, error) {
	cconn, sconn, err := transport.Pair(kind)
	if err != nil {
		return nil, err
	}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Echo", Echo{}); err != nil {
		cconn.Close()
		sconn.Close()
		return nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeConn(sconn) // returns when the client hangs up, after its handlers
	}()
	c := rpc.NewClient(cconn)
	return &echoClient{
		echo: func(in []byte, out *[]byte) error {
			return c.Call("Echo.Echo", in, out)
		},
		close: func() error {
			err := c.Close()
			select {
			case <-served:
			case <-time.After(waitLimit):
				err = errors.Join(err, fmt.Errorf("ServeConn did not return within %v of Close", waitLimit))
			}
			return err
		},
	}, nil
}

// payloads are the argument sizes of BenchmarkCall.
var payloads = []struct {
	name string
	size int
}{
	{"16B", 16},
	{"4KiB", 4 << 10},
}

// kinds are the transports of BenchmarkCall.
var kinds = []transport.Kind{transport.Mem, transport.TCP}

// callerCounts are the numbers of concurrent callers of BenchmarkCall.
var callerCounts = []int{1, 16, 256}

// makePayload returns n bytes of a recognizable pattern.
func makePayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return b
}

// checkEcho reports whether got is what echoing want should give.
func checkEcho(want, got []byte) error {
	if string(got) != string(want) { // compiles to a compare, no allocation
		return fmt.Errorf("echo returned %d bytes, not the %d sent", len(got), len(want))
	}
	return nil
}
