// Package toxiproxy runs a toxiproxy server (github.com/Shopify/toxiproxy,
// built by `make toxiproxy` into .bin/toxiproxy-server) on 127.0.0.1 and
// drives it through its HTTP API with net/http and encoding/json, so that
// toxiproxy's Go client stays out of go.mod. The fault tests use it
// through internal/toxitest, the benchmark's slow-link cell directly.
//
// Everything listens on 127.0.0.1 only.
package toxiproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// readyBound bounds how long Start waits for the server's API to answer.
const readyBound = 10 * time.Second

// startAttempts is how many ports Start tries: a port is free when chosen
// but may be taken before the server binds it, and the server then exits
// at once.
const startAttempts = 3

// Server is a running toxiproxy server. Its methods are safe for
// concurrent use.
type Server struct {
	api    string // http://127.0.0.1:port
	client *http.Client
	kill   func()
}

// Start runs the toxiproxy server binary at bin on a free port of
// 127.0.0.1, its output going to log, and waits until its API answers.
// Stop ends it.
func Start(bin string, log io.Writer) (*Server, error) {
	for attempt := 1; ; attempt++ {
		s, exited, err := start(bin, log)
		if err == nil {
			return s, nil
		}
		if !exited || attempt == startAttempts {
			return nil, fmt.Errorf("toxiproxy: %w", err)
		}
	}
}

// start runs the binary once. exited reports whether the process ended by
// itself before its API answered.
func start(bin string, log io.Writer) (s *Server, exited bool, err error) {
	port, err := freePort()
	if err != nil {
		return nil, false, err
	}
	cmd := exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("starting %s: %w", bin, err)
	}
	var waitErr error // set before gone is closed
	gone := make(chan struct{})
	go func() { // ends when the process does
		waitErr = cmd.Wait()
		close(gone)
	}()
	s = &Server{
		api: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		// No keep-alive: no idle connection, and so no goroutine of
		// net/http, outlives a request.
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{DisableKeepAlives: true},
		},
		kill: func() {
			cmd.Process.Kill()
			<-gone
		},
	}
	if err := s.waitReady(gone, &waitErr); err != nil {
		select {
		case <-gone:
			exited = true
		default:
		}
		s.Stop()
		return nil, exited, err
	}
	return s, false, nil
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() { s.kill() }

// waitReady polls GET /version every 10 ms until it answers 200, the
// process exits (gone is closed, *waitErr then says how) or readyBound
// passes.
func (s *Server) waitReady(gone <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(readyBound)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.do("GET", "/version", nil, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("API at %s not ready within %v: %w", s.api, readyBound, err)
		}
		select {
		case <-gone:
			return fmt.Errorf("exited before its API answered: %w", errors.Join(*waitErr, err))
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
func (s *Server) NewProxy(name, upstream string) (*Proxy, error) {
	in := map[string]any{"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true}
	var out struct {
		Listen string `json:"listen"`
	}
	if err := s.do("POST", "/proxies", in, &out); err != nil {
		return nil, fmt.Errorf("toxiproxy: creating proxy %q: %w", name, err)
	}
	if _, port, err := net.SplitHostPort(out.Listen); err != nil || port == "0" {
		return nil, fmt.Errorf("toxiproxy: proxy %q listens on %q, want a host:port with a port", name, out.Listen)
	}
	return &Proxy{s: s, Name: name, Listen: out.Listen}, nil
}

// Attrs are a toxic's attributes, as toxiproxy's README lists them for
// each type (latency: "latency", "jitter" in ms; bandwidth: "rate" in
// KB/s of 1000 bytes; slicer: "average_size", "size_variation" in bytes,
// "delay" in µs; timeout and reset_peer: "timeout" in ms; limit_data:
// "bytes").
type Attrs map[string]any

// Directions of a toxic.
const (
	Upstream   = "upstream"   // client to server
	Downstream = "downstream" // server to client
)

// AddToxic adds a toxic of type typ, named name, to the stream of the
// given direction (Upstream or Downstream) of every connection, those
// open and those to come, with toxicity 1.
func (p *Proxy) AddToxic(name, typ, stream string, attrs Attrs) error {
	in := map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1, "attributes": attrs}
	if err := p.s.do("POST", p.path("toxics"), in, nil); err != nil {
		return fmt.Errorf("toxiproxy: adding toxic %q to %q: %w", name, p.Name, err)
	}
	return nil
}

// SetToxicity sets the probability, from 0 to 1, that the toxic named
// name acts on a connection; it is drawn again for each open connection
// at once. A toxic at 0 is in the chain but passes data untouched, which
// matters for reset_peer: toxiproxy sets SO_LINGER to 0 (so that closing
// sends RST) only on connections made while a reset_peer toxic is in the
// chain.
func (p *Proxy) SetToxicity(name string, toxicity float64) error {
	if err := p.s.do("PATCH", p.path("toxics", name), map[string]any{"toxicity": toxicity}, nil); err != nil {
		return fmt.Errorf("toxiproxy: setting toxicity of %q on %q: %w", name, p.Name, err)
	}
	return nil
}

// path returns /proxies/{name}, followed by elems, each escaped.
func (p *Proxy) path(elems ...string) string {
	s := "/proxies/" + url.PathEscape(p.Name)
	for _, e := range elems {
		s += "/" + url.PathEscape(e)
	}
	return s
}
