package systems

import (
	"context"
	"fmt"
	"io"
	"net"

	"storj.io/drpc"
	"storj.io/drpc/drpcconn"
	"storj.io/drpc/drpcmux"
	"storj.io/drpc/drpcserver"
)

// DRPC is storj.io/drpc. A drpc connection runs one RPC at a time by
// design (its manager holds a semaphore of size 1), so concurrent callers
// on the one connection queue for it.
type DRPC struct{}

// Name implements System.
func (DRPC) Name() string { return "drpc" }

// Note implements System.
func (DRPC) Note() string {
	return "storj.io/drpc v1.0.0: drpcconn.New on the client end, drpcserver.ServeOne on the server end; hand-written Description, pass-through *[]byte encoding. One RPC at a time per connection by design: concurrent callers queue on the connection's semaphore, so its numbers for more than one caller measure that queue"
}

// drpcBytes is a drpc.Encoding whose messages are *[]byte.
type drpcBytes struct{}

func (drpcBytes) Marshal(msg drpc.Message) ([]byte, error) {
	b, ok := msg.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("drpcBytes: cannot marshal %T", msg)
	}
	return *b, nil
}

func (drpcBytes) Unmarshal(buf []byte, msg drpc.Message) error {
	b, ok := msg.(*[]byte)
	if !ok {
		return fmt.Errorf("drpcBytes: cannot unmarshal into %T", msg)
	}
	*b = append((*b)[:0], buf...)
	return nil
}

const drpcMethod = "/peerbench.Echo/Echo"

type drpcEchoServer struct{}

func (drpcEchoServer) Echo(_ context.Context, in *[]byte) (*[]byte, error) { return in, nil }

// drpcEchoDesc is what protoc-gen-go-drpc would generate for one unary method.
type drpcEchoDesc struct{}

func (drpcEchoDesc) NumMethods() int { return 1 }

func (drpcEchoDesc) Method(n int) (string, drpc.Encoding, drpc.Receiver, any, bool) {
	if n != 0 {
		return "", nil, nil, nil, false
	}
	recv := func(srv any, ctx context.Context, in1, _ any) (drpc.Message, error) {
		return srv.(drpcEchoServer).Echo(ctx, in1.(*[]byte))
	}
	return drpcMethod, drpcBytes{}, recv, drpcEchoServer.Echo, true
}

// Start implements System.
func (DRPC) Start(client, server net.Conn) (Caller, io.Closer, error) {
	m := drpcmux.New()
	if err := m.Register(drpcEchoServer{}, drpcEchoDesc{}); err != nil {
		client.Close()
		server.Close()
		return nil, nil, err
	}
	srv := drpcserver.New(m)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeOne(ctx, server) }()
	conn := drpcconn.New(client)
	closer := closerFunc(func() error {
		errC := conn.Close()
		cancel()
		// ServeOne reports the client's hang-up in several ways (EOF,
		// closed, canceled); none of them is a failure here.
		<-served
		return errC
	})
	return drpcCaller{conn}, closer, nil
}

type drpcCaller struct{ c *drpcconn.Conn }

func (c drpcCaller) Echo(ctx context.Context, in, buf []byte) ([]byte, error) {
	out := buf[:0]
	err := c.c.Invoke(ctx, drpcMethod, drpcBytes{}, &in, &out)
	return out, err
}
