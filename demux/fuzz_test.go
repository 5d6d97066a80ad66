package demux_test

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
)

// FuzzServe feeds a DeMux a client's preface followed by arbitrary bytes:
// whatever they hold, Serve must return once the stream ends, without a
// panic, a hang or a goroutine left behind.
func FuzzServe(f *testing.F) {
	f.Add(rpctest.Frames(rpctest.Request(1, "echo", "hi")))
	f.Add(rpctest.Frames(rpctest.Request(1, "park", nil), frame.Frame{Type: frame.TypeCancel, XID: 1}))
	f.Add(rpctest.Frames(rpctest.Request(1, "echo", []int{1, 2}), rpctest.Request(2, "nothere", nil),
		frame.Frame{Type: frame.TypeNotify, Method: "echo", Payload: []byte{0xc0}}))
	f.Add(rpctest.Frames(frame.Frame{Type: frame.TypeRequest, XID: 3, Method: "echo", Payload: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}}))
	f.Add(rpctest.Frames(frame.Frame{Type: frame.TypeRequest, XID: 4, Method: "echo", Flags: frame.FlagDeadline, Budget: 1, Payload: []byte{0x90}}))
	f.Add([]byte{0, 0, 0, 10, 0xee, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	// Each input is served twice: by a worker pool and by runners taking
	// requests from the DeMux's queue.
	modes := [][]demux.Option{
		{demux.MaxFrameSize(1 << 16), demux.Workers(2)},
		{demux.MaxFrameSize(1 << 16), demux.MaxInFlight(8)},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range modes {
			serveStream(t, opts, data)
		}
	})
}

// serveStream serves data, after a client's preface, with a DeMux made
// with opts, and returns once Serve has returned and the DeMux is closed.
// The client closes only its writing end and reads every reply, as a
// half-closed client does: the server reads everything, then EOF, then
// finishes what it accepted. Its "park" handlers wait until the client
// has sent everything, or for their contexts.
func serveStream(t *testing.T, opts []demux.Option, data []byte) {
	sent := make(chan struct{})
	r := demux.NewRouter()
	r.Handle("echo", demux.Func(func(_ context.Context, v any) (any, error) { return v, nil }))
	r.Handle("park", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		select {
		case <-sent:
			return "released", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	toServer, fromClient, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	toClient, fromServer, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	server := &pipeEnd{Reader: toServer, Writer: fromServer, files: []*os.File{toServer, fromServer}}
	d := demux.New(server, r, opts...)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	drained := make(chan struct{})
	go func() { // read the replies so that the server's writes never block
		io.Copy(io.Discard, toClient)
		close(drained)
	}()
	fromClient.Write(frame.Preface[:])
	fromClient.Write(data)
	fromClient.Close()
	close(sent)
	recv(t, served, "Serve's return") // EOF, or the first violation, ends it
	d.Close()
	recv(t, drained, "the end of the server's replies")
	toClient.Close()
}

// pipeEnd is one side of a stream made of two OS pipes.
type pipeEnd struct {
	io.Reader
	io.Writer
	files []*os.File
}

func (p *pipeEnd) Close() error {
	for _, f := range p.files {
		f.Close()
	}
	return nil
}
