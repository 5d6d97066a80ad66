package systems

import (
	"context"
	"io"
	"net"
	"net/rpc"
)

// NetRPC is Go's net/rpc with its default gob codec.
type NetRPC struct{}

// Name implements System.
func (NetRPC) Name() string { return "netrpc" }

// Note implements System.
func (NetRPC) Note() string {
	return "net/rpc, gob codec: rpc.NewClient on the client end, Server.ServeConn on the server end (a goroutine per request); ctx is ignored"
}

// EchoService is the net/rpc service.
type EchoService struct{}

// Echo sets *reply to args.
func (EchoService) Echo(args []byte, reply *[]byte) error {
	*reply = args
	return nil
}

// Start implements System.
func (NetRPC) Start(client, server net.Conn) (Caller, io.Closer, error) {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Echo", EchoService{}); err != nil {
		return nil, nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeConn(server)
	}()
	c := rpc.NewClient(client)
	closer := closerFunc(func() error {
		// net/rpc's Client.Close does not wait for its reader goroutine;
		// it exits as soon as its read fails, which the server's hang-up
		// guarantees.
		err := c.Close()
		<-served
		return err
	})
	return netrpcCaller{c}, closer, nil
}

type netrpcCaller struct{ c *rpc.Client }

func (c netrpcCaller) Echo(_ context.Context, in, buf []byte) ([]byte, error) {
	out := buf[:0]
	err := c.c.Call("Echo.Echo", in, &out)
	return out, err
}
