package systems

import (
	"context"
	"io"
	"net"

	"github.com/lesismal/arpc"
	"github.com/lesismal/arpc/log"
)

// Arpc is github.com/lesismal/arpc.
type Arpc struct{}

// Name implements System.
func (Arpc) Name() string { return "arpc" }

// Note implements System.
func (Arpc) Note() string {
	return "github.com/lesismal/arpc v1.2.17: arpc.NewClient with a dialer returning the pre-made conn once (redials after that fail), arpc.Server.Serve on a one-conn listener; []byte bodies bypass its codec; default handler (batched async writes, a goroutine per request); logging off. Its default OnConnected turns Nagle back on for a *net.TCPConn, which does not fire here because the conn is wrapped for counting"
}

func init() { log.SetLevel(log.LevelNone) }

// Start implements System.
func (Arpc) Start(client, server net.Conn) (Caller, io.Closer, error) {
	srv := arpc.NewServer()
	srv.Handler.Handle("echo", func(ctx *arpc.Context) {
		var b []byte
		if err := ctx.Bind(&b); err != nil {
			ctx.Error(err)
			return
		}
		ctx.Write(b)
	})
	served := make(chan error, 1)
	lis := newOneConnListener(server)
	go func() { served <- srv.Serve(lis) }()

	h := arpc.NewHandler()
	h.SetMaxReconnectTimes(1)
	dial := dialOnce(client)
	c, err := arpc.NewClient(dial, h)
	if err != nil {
		lis.Close()
		<-served
		client.Close()
		return nil, nil, err
	}
	closer := closerFunc(func() error {
		c.Stop()
		srv.Stop()
		<-served
		return nil
	})
	return arpcCaller{c}, closer, nil
}

type arpcCaller struct{ c *arpc.Client }

func (c arpcCaller) Echo(ctx context.Context, in, buf []byte) ([]byte, error) {
	out := buf[:0]
	err := c.c.CallWith(ctx, "echo", in, &out)
	return out, err
}
