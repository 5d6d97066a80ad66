package systems

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
)

// Muxrpc is a mux.Mux calling a demux.DeMux. Workers is passed to
// demux.Workers; zero means the default, a goroutine per request. Typed
// makes the echo handler a demux.Func, which decodes the argument into a
// new []byte; otherwise it returns Request.Bytes, the argument's bytes
// without a copy, as the pass-through codecs of grpc, drpc and arpc do.
type Muxrpc struct {
	Workers int
	Typed   bool
	// Keepalive turns keepalive on at both ends, with the defaults of
	// mux.Dial and demux.Server (a PING after 30 s of silence).
	Keepalive bool
	// ChunkSize is passed to mux.ChunkSize and demux.ChunkSize; zero
	// means the default (16 KiB).
	ChunkSize int
	// Urgent sends calls of at most urgentMax bytes with
	// mux.PriorityUrgent (mux.WithPriority), for the head-of-line
	// benchmark, whose small calls are 16 B and bulk calls 1 MiB.
	Urgent bool
	// NoPace turns off the pacing of chunks (mux.QueueDelay and
	// demux.QueueDelay -1).
	NoPace bool
	// QueueDelay, if positive, is passed to mux.QueueDelay and
	// demux.QueueDelay.
	QueueDelay time.Duration
}

// urgentMax is the largest argument Muxrpc.Urgent sends urgent.
const urgentMax = 1 << 10

// Name implements System.
func (m Muxrpc) Name() string {
	switch {
	case m.Urgent:
		return "muxrpc-urgent"
	case m.NoPace:
		return "muxrpc-nopace"
	case m.QueueDelay > 0:
		return "muxrpc-delay" + m.QueueDelay.String()
	case m.ChunkSize > 0:
		return "muxrpc-chunk" + sizeName(m.ChunkSize)
	case m.Keepalive:
		return "muxrpc-keepalive"
	case m.Workers > 0:
		return "muxrpc-workers"
	case m.Typed:
		return "muxrpc-func"
	}
	return "muxrpc"
}

// Note implements System.
func (m Muxrpc) Note() string {
	s := "mux.Mux → demux.DeMux, default options (a goroutine per request)"
	if m.Workers > 0 {
		s = fmt.Sprintf("mux.Mux → demux.DeMux with demux.Workers(%d)", m.Workers)
	}
	if m.Keepalive {
		s += ", keepalive on at both ends (30 s, 10 s)"
	}
	if m.Urgent {
		s += fmt.Sprintf(", calls of at most %d B sent with mux.WithPriority(ctx, mux.PriorityUrgent)", urgentMax)
	}
	if m.ChunkSize > 0 {
		s += fmt.Sprintf(", mux.ChunkSize and demux.ChunkSize %s", sizeName(m.ChunkSize))
	}
	if m.NoPace {
		s += ", chunks not paced (mux.QueueDelay and demux.QueueDelay -1)"
	}
	if m.QueueDelay > 0 {
		s += fmt.Sprintf(", mux.QueueDelay and demux.QueueDelay %v", m.QueueDelay)
	}
	if m.Typed {
		s += "; handler demux.Func(func(ctx, b []byte) ([]byte, error)), which decodes the argument into a new []byte"
	} else {
		s += "; handler returns req.Bytes(), the argument's bytes without a copy"
	}
	return s + "; msgpack bin payloads, reply decoded into the caller's buffer"
}

// Start implements System.
func (m Muxrpc) Start(client, server net.Conn) (Caller, io.Closer, error) {
	router := demux.NewRouter()
	if m.Typed {
		router.Handle("echo", demux.Func(func(_ context.Context, b []byte) ([]byte, error) {
			return b, nil
		}))
	} else {
		router.Handle("echo", demux.HandlerFunc(func(_ context.Context, req *demux.Request) (any, error) {
			return req.Bytes()
		}))
	}
	router.Handle("stream", demux.HandlerFunc(muxStreamHandler))
	var opts []demux.Option
	var mopts []mux.Option
	if m.Workers > 0 {
		opts = append(opts, demux.Workers(m.Workers))
	}
	if m.Keepalive {
		opts = append(opts, demux.Keepalive(mux.DefaultKeepaliveInterval, mux.DefaultKeepaliveTimeout))
		mopts = append(mopts, mux.Keepalive(mux.DefaultKeepaliveInterval, mux.DefaultKeepaliveTimeout))
	}
	if m.ChunkSize > 0 {
		opts = append(opts, demux.ChunkSize(m.ChunkSize))
		mopts = append(mopts, mux.ChunkSize(m.ChunkSize))
	}
	if m.NoPace {
		opts = append(opts, demux.QueueDelay(-1))
		mopts = append(mopts, mux.QueueDelay(-1))
	}
	if m.QueueDelay > 0 {
		opts = append(opts, demux.QueueDelay(m.QueueDelay))
		mopts = append(mopts, mux.QueueDelay(m.QueueDelay))
	}
	d := demux.New(server, router, opts...)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	mx := mux.New(client, mopts...)
	closer := closerFunc(func() error {
		errM := mx.Close()
		errD := d.Close()
		errS := <-served
		if errors.Is(errS, io.EOF) {
			errS = nil
		}
		return errors.Join(errM, errD, errS)
	})
	return muxCaller{mx, m.Urgent}, closer, nil
}

type muxCaller struct {
	m      *mux.Mux
	urgent bool
}

func (c muxCaller) Echo(ctx context.Context, in, buf []byte) ([]byte, error) {
	if c.urgent && len(in) <= urgentMax {
		ctx = mux.WithPriority(ctx, mux.PriorityUrgent)
	}
	out := buf[:0]
	err := c.m.Call(ctx, "echo", in, &out)
	return out, err
}

// sizeName formats n as 16KiB or 1MiB where it can.
func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}
