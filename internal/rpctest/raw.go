package rpctest

import (
	"bytes"
	"io"
	"testing"

	"github.com/muxrpc/muxrpc/frame"
)

// Raw speaks the wire format by hand from one end of a stream, to play a
// misbehaving or hand-driven peer.
type Raw struct {
	t   testing.TB
	RWC io.ReadWriteCloser
	W   frame.Writer
	R   frame.Reader
}

// NewRaw wraps one end of a stream.
func NewRaw(t testing.TB, rwc io.ReadWriteCloser) *Raw {
	return &Raw{t: t, RWC: rwc, W: frame.Native.NewWriter(rwc), R: frame.Native.NewReader(rwc, 0)}
}

// Preface sends this side's preface.
func (p *Raw) Preface() {
	p.t.Helper()
	if err := p.W.WritePreface(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.W.Flush(); err != nil {
		p.t.Fatal(err)
	}
}

// Send writes one frame.
func (p *Raw) Send(f frame.Frame) {
	p.t.Helper()
	if err := p.W.WriteFrame(&f); err != nil {
		p.t.Fatal(err)
	}
	if err := p.W.Flush(); err != nil {
		p.t.Fatal(err)
	}
}

// Write writes raw bytes.
func (p *Raw) Write(b []byte) {
	p.t.Helper()
	if _, err := p.RWC.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

// Read reads the next frame, failing the test on error.
func (p *Raw) Read() frame.Frame {
	p.t.Helper()
	var f frame.Frame
	if err := p.R.ReadFrame(&f); err != nil {
		p.t.Fatal(err)
	}
	return f
}

// HangUp reads the other side's preface, then closes: closing a TCP socket
// with unread data would reset the connection instead of ending it.
func (p *Raw) HangUp() {
	p.t.Helper()
	if err := p.R.ReadPreface(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.RWC.Close(); err != nil {
		p.t.Fatal(err)
	}
}

// Request builds a REQUEST frame with args encoded.
func Request(xid uint64, method string, args any) frame.Frame {
	f := frame.Frame{Type: frame.TypeRequest, XID: xid, Method: method}
	if err := f.EncodePayload(args); err != nil {
		panic(err)
	}
	return f
}

// Response builds a RESPONSE frame with result encoded.
func Response(xid uint64, result any) frame.Frame {
	f := frame.Frame{Type: frame.TypeResponse, XID: xid}
	if err := f.EncodePayload(result); err != nil {
		panic(err)
	}
	return f
}

// Frames returns the bytes of fs as a peer would write them after its
// preface.
func Frames(fs ...frame.Frame) []byte {
	var buf bytes.Buffer
	w := frame.Native.NewWriter(&buf)
	for i := range fs {
		if err := w.WriteFrame(&fs[i]); err != nil {
			panic(err)
		}
	}
	if err := w.Flush(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
