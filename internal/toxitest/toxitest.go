// Package toxitest runs a toxiproxy server (github.com/Shopify/toxiproxy)
// for fault tests over TCP loopback, through internal/toxiproxy, failing
// the test on any error of its API.
//
// The server is a separate binary, built by `make toxiproxy` into
// <module root>/.bin/toxiproxy-server; the environment variable
// MUXRPC_TOXIPROXY, if set, names it instead. Start skips the test when
// the binary is missing.
package toxitest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/muxrpc/muxrpc/internal/toxiproxy"
)

// EnvBinary is the environment variable that names the toxiproxy server
// binary, as the Makefile sets it for go test.
const EnvBinary = "MUXRPC_TOXIPROXY"

// Server is a running toxiproxy server. Its methods may be called from
// any goroutine, but fail the test they are given, so call them from the
// test's own goroutine.
type Server struct {
	s *toxiproxy.Server
}

// Binary returns the path of the toxiproxy server binary: the value of
// MUXRPC_TOXIPROXY if set, otherwise .bin/toxiproxy-server under the
// module root. It returns an error saying how to build it if there is no
// such file.
func Binary() (string, error) {
	path := os.Getenv(EnvBinary)
	if path == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		path = filepath.Join(root, ".bin", "toxiproxy-server")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no toxiproxy server binary at %s (run `make toxiproxy`, or set %s): %w", path, EnvBinary, err)
	}
	return path, nil
}

// moduleRoot returns the nearest directory above the working directory
// (go test runs in the package's) that holds a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("toxitest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs a toxiproxy server on 127.0.0.1 with a free port, waits until
// its API answers, and stops it (kill, then wait for it) when the test
// ends. It skips the test if there is no binary (see Binary). The
// server's log is shown if the test fails.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skipf("fault tests need toxiproxy: %v", err)
	}
	logPath := filepath.Join(t.TempDir(), "toxiproxy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy
	s, err := toxiproxy.Start(bin, logFile)
	if err != nil {
		t.Fatalf("%v\nits log:\n%s", err, readLog(logPath))
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("toxiproxy's log:\n%s", readLog(logPath))
		}
	})
	return &Server{s: s}
}

// readLog returns the end of the server's log, at most 16 KiB.
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > 16<<10 {
		b = append([]byte("…"), b[len(b)-16<<10:]...)
	}
	return string(b)
}

// Proxy is a proxy of a Server: connections to Listen are forwarded to
// its upstream through the proxy's toxics.
type Proxy struct {
	p      *toxiproxy.Proxy
	Name   string
	Listen string // host:port on 127.0.0.1, for the client to dial
}

// NewProxy creates a proxy named name that listens on a free port of
// 127.0.0.1 and forwards to upstream.
func (s *Server) NewProxy(t testing.TB, name, upstream string) *Proxy {
	t.Helper()
	p, err := s.s.NewProxy(name, upstream)
	if err != nil {
		t.Fatal(err)
	}
	return &Proxy{p: p, Name: p.Name, Listen: p.Listen}
}

// Attrs are a toxic's attributes (see toxiproxy.Attrs).
type Attrs = toxiproxy.Attrs

// Directions of a toxic.
const (
	Upstream   = toxiproxy.Upstream   // client to server
	Downstream = toxiproxy.Downstream // server to client
)

// AddToxic adds a toxic of type typ, named name, to the stream of the
// given direction (Upstream or Downstream) of every connection, those
// open and those to come, with toxicity 1.
func (p *Proxy) AddToxic(t testing.TB, name, typ, stream string, attrs Attrs) {
	t.Helper()
	if err := p.p.AddToxic(name, typ, stream, attrs); err != nil {
		t.Fatal(err)
	}
}

// SetToxicity sets the probability, from 0 to 1, that the toxic named
// name acts on a connection (see toxiproxy.Proxy.SetToxicity).
func (p *Proxy) SetToxicity(t testing.TB, name string, toxicity float64) {
	t.Helper()
	if err := p.p.SetToxicity(name, toxicity); err != nil {
		t.Fatal(err)
	}
}
