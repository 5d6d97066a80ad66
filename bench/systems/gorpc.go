package systems

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/valyala/gorpc"
)

// Gorpc is github.com/valyala/gorpc (the 2016 snapshot, the only version
// the module proxy serves).
type Gorpc struct{}

// Name implements System.
func (Gorpc) Name() string { return "gorpc" }

// Note implements System.
func (Gorpc) Note() string {
	return "github.com/valyala/gorpc v0.0.0-20160519171614-908281bef774: Client.Dial returns the pre-made conn once, Server.Listener is a one-conn listener; gob messages, compression disabled (its default is flate, which no other system does), default FlushDelay (-1: flush at once)"
}

func init() { gorpc.SetErrorLogger(gorpc.NilErrorLogger) }

// gorpcListener is a gorpc.Listener over a oneConnListener.
type gorpcListener struct{ l *oneConnListener }

func (g gorpcListener) Init(string) error { return nil }

func (g gorpcListener) Accept() (io.ReadWriteCloser, string, error) {
	c, err := g.l.Accept()
	if err != nil {
		return nil, "", err
	}
	return c, "pre-made", nil
}

func (g gorpcListener) Close() error         { return g.l.Close() }
func (g gorpcListener) ListenAddr() net.Addr { return g.l.Addr() }

// Start implements System.
func (Gorpc) Start(client, server net.Conn) (Caller, io.Closer, error) {
	srv := &gorpc.Server{
		Addr:     "pre-made",
		Handler:  func(_ string, req any) any { return req },
		Listener: gorpcListener{newOneConnListener(server)},
		LogError: gorpc.NilErrorLogger,
	}
	if err := srv.Start(); err != nil {
		client.Close()
		server.Close()
		return nil, nil, err
	}
	dial := dialOnce(client)
	c := &gorpc.Client{
		Addr:               "pre-made",
		DisableCompression: true,
		Dial:               func(string) (io.ReadWriteCloser, error) { return dial() },
		LogError:           gorpc.NilErrorLogger,
	}
	c.Start()
	closer := closerFunc(func() error {
		c.Stop()
		srv.Stop()
		return nil
	})
	return gorpcCaller{c}, closer, nil
}

type gorpcCaller struct{ c *gorpc.Client }

var errGorpcType = errors.New("gorpc: reply is not a []byte")

func (c gorpcCaller) Echo(_ context.Context, in, _ []byte) ([]byte, error) {
	resp, err := c.c.Call(in)
	if err != nil {
		return nil, err
	}
	b, ok := resp.([]byte)
	if !ok {
		return nil, errGorpcType
	}
	return b, nil
}
