// Package toxitest runs a toxiproxy server (github.com/Shopify/toxiproxy)
// for fault tests over TCP loopback and drives it through its HTTP API.
//
// The server is a separate binary, built by `make toxiproxy` into
// <module root>/.bin/toxiproxy-server; the environment variable
// MUXRPC_TOXIPROXY, if set, names it instead. Start skips the test when
// the binary is missing. The API is spoken with net/http and
// encoding/json, so that toxiproxy's Go client stays out of go.mod.
//
// Everything listens on 127.0.0.1 only.
package toxitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// EnvBinary is the environment variable that names the toxiproxy server
// binary, as the Makefile sets it for go test.
const EnvBinary = "MUXRPC_TOXIPROXY"

// readyBound bounds how long Start waits for the server's API to answer.
const readyBound = 10 * time.Second

// Server is a running toxiproxy server. Its methods may be called from
// any goroutine, but fail the test they are given, so call them from the
// test's own goroutine.
type Server struct {
	api    string // http://127.0.0.1:port
	client *http.Client
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
	// The port is free when chosen but may be taken before the server
	// binds it; then the server exits at once and another port is tried.
	for attempt := 1; ; attempt++ {
		s, gone, err := start(t, bin)
		if err == nil {
			return s
		}
		if !gone || attempt == 3 {
			t.Fatalf("toxiproxy: %v", err)
		}
		t.Logf("toxiproxy: %v; trying another port", err)
	}
}

// start runs the binary once. gone reports whether the process ended by
// itself before its API answered.
func start(t testing.TB, bin string) (s *Server, gone bool, err error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return nil, false, err
	}
	logPath := filepath.Join(t.TempDir(), "toxiproxy.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, false, err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("starting %s: %w", bin, err)
	}
	var waitErr error // set before exited is closed
	exited := make(chan struct{})
	go func() { // ends when the process does
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}

	s = &Server{
		api: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		// No keep-alive: no idle connection, and so no goroutine of
		// net/http, outlives a request.
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
	}
	if err := s.waitReady(exited, &waitErr); err != nil {
		select {
		case <-exited:
			gone = true
		default:
		}
		stop()
		return nil, gone, fmt.Errorf("%w\nits log:\n%s", err, readLog(logPath))
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("toxiproxy's log:\n%s", readLog(logPath))
		}
	})
	return s, false, nil
}

// waitReady polls GET /version every 10 ms until it answers 200, the
// process exits (exited is closed, *waitErr then says how) or readyBound
// passes.
func (s *Server) waitReady(exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(readyBound)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		resp, err := s.client.Get(s.api + "/version")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /version: %s", resp.Status)
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("API at %s not ready within %v: %v", s.api, readyBound, lastErr)
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before its API answered: %v", *waitErr)
		case <-tick.C:
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
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

// do sends a request with body v (JSON, if not nil) and decodes a JSON
// answer into out (if not nil). An answer outside 2xx is an error that
// carries the server's message.
func (s *Server) do(method, path string, v, out any) error {
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.api+path, body)
	if err != nil {
		return err
	}
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding %q: %w", method, path, b, err)
		}
	}
	return nil
}

// Proxy is a proxy of a Server: connections to Listen are forwarded to
// its upstream through the proxy's toxics.
type Proxy struct {
	s      *Server
	Name   string
	Listen string // host:port on 127.0.0.1, for the client to dial
}

// NewProxy creates a proxy named name that listens on a free port of
// 127.0.0.1 and forwards to upstream.
func (s *Server) NewProxy(t testing.TB, name, upstream string) *Proxy {
	t.Helper()
	in := map[string]any{"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true}
	var out struct {
		Listen string `json:"listen"`
	}
	if err := s.do("POST", "/proxies", in, &out); err != nil {
		t.Fatalf("toxiproxy: creating proxy %q: %v", name, err)
	}
	if _, port, err := net.SplitHostPort(out.Listen); err != nil || port == "0" {
		t.Fatalf("toxiproxy: proxy %q listens on %q, want a host:port with a port", name, out.Listen)
	}
	return &Proxy{s: s, Name: name, Listen: out.Listen}
}

// Attrs are a toxic's attributes, as toxiproxy's README lists them for
// each type (latency: "latency", "jitter" in ms; bandwidth: "rate" in
// KB/s; slicer: "average_size", "size_variation" in bytes, "delay" in µs;
// timeout and reset_peer: "timeout" in ms; limit_data: "bytes").
type Attrs map[string]any

// Directions of a toxic.
const (
	Upstream   = "upstream"   // client to server
	Downstream = "downstream" // server to client
)

// AddToxic adds a toxic of type typ, named name, to the stream of the
// given direction (Upstream or Downstream) of every connection, those
// open and those to come, with toxicity 1.
func (p *Proxy) AddToxic(t testing.TB, name, typ, stream string, attrs Attrs) {
	t.Helper()
	in := map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1, "attributes": attrs}
	if err := p.s.do("POST", p.path("toxics"), in, nil); err != nil {
		t.Fatalf("toxiproxy: adding toxic %q to %q: %v", name, p.Name, err)
	}
}

// SetToxicity sets the probability, from 0 to 1, that the toxic named
// name acts on a connection; it is drawn again for each open connection
// at once. A toxic at 0 is in the chain but passes data untouched, which
// matters for reset_peer: toxiproxy sets SO_LINGER to 0 (so that closing
// sends RST) only on connections made while a reset_peer toxic is in the
// chain.
func (p *Proxy) SetToxicity(t testing.TB, name string, toxicity float64) {
	t.Helper()
	if err := p.s.do("PATCH", p.path("toxics", name), map[string]any{"toxicity": toxicity}, nil); err != nil {
		t.Fatalf("toxiproxy: setting toxicity of %q on %q: %v", name, p.Name, err)
	}
}

// RemoveToxic removes the toxic named name.
func (p *Proxy) RemoveToxic(t testing.TB, name string) {
	t.Helper()
	if err := p.s.do("DELETE", p.path("toxics", name), nil, nil); err != nil {
		t.Fatalf("toxiproxy: removing toxic %q from %q: %v", name, p.Name, err)
	}
}

// SetEnabled enables or disables the proxy. Disabling it closes its
// listener and every connection through it. (PATCH: toxiproxy 2.12 still
// takes POST here but logs it as deprecated.)
func (p *Proxy) SetEnabled(t testing.TB, enabled bool) {
	t.Helper()
	if err := p.s.do("PATCH", p.path(), map[string]any{"enabled": enabled}, nil); err != nil {
		t.Fatalf("toxiproxy: setting enabled=%v on %q: %v", enabled, p.Name, err)
	}
}

// path returns /proxies/{name}, followed by elems, each escaped.
func (p *Proxy) path(elems ...string) string {
	s := "/proxies/" + url.PathEscape(p.Name)
	for _, e := range elems {
		s += "/" + url.PathEscape(e)
	}
	return s
}
