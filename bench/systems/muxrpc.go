package systems

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
)

// Muxrpc is a mux.Mux calling a demux.DeMux. Workers is passed to
// demux.Workers; zero means the default, a goroutine per request.
type Muxrpc struct{ Workers int }

// Name implements System.
func (m Muxrpc) Name() string {
	if m.Workers > 0 {
		return "muxrpc-workers"
	}
	return "muxrpc"
}

// Note implements System.
func (m Muxrpc) Note() string {
	if m.Workers > 0 {
		return fmt.Sprintf("mux.Mux → demux.DeMux with demux.Workers(%d); msgpack []byte, reply decoded into the caller's buffer", m.Workers)
	}
	return "mux.Mux → demux.DeMux, default options (a goroutine per request); msgpack []byte, reply decoded into the caller's buffer"
}

// Start implements System.
func (m Muxrpc) Start(client, server net.Conn) (Caller, io.Closer, error) {
	router := demux.NewRouter()
	router.Handle("echo", demux.Func(func(_ context.Context, b []byte) ([]byte, error) {
		return b, nil
	}))
	var opts []demux.Option
	if m.Workers > 0 {
		opts = append(opts, demux.Workers(m.Workers))
	}
	d := demux.New(server, router, opts...)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	mx := mux.New(client)
	closer := closerFunc(func() error {
		errM := mx.Close()
		errD := d.Close()
		errS := <-served
		if errors.Is(errS, io.EOF) {
			errS = nil
		}
		return errors.Join(errM, errD, errS)
	})
	return muxCaller{mx}, closer, nil
}

type muxCaller struct{ m *mux.Mux }

func (c muxCaller) Echo(ctx context.Context, in, buf []byte) ([]byte, error) {
	out := buf[:0]
	err := c.m.Call(ctx, "echo", in, &out)
	return out, err
}
