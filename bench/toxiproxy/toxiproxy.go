// Package toxiproxy runs a toxiproxy server (github.com/Shopify/toxiproxy,
// built by `make toxiproxy` into .bin/toxiproxy-server) on 127.0.0.1 and
// drives it through its HTTP API with net/http and encoding/json, for the
// benchmark's slow-link cell. It is the bench module's own small client,
// in the manner of the library's internal/toxitest, without testing.TB.
package toxiproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Server is a running toxiproxy server.
type Server struct {
	api    string
	client *http.Client
	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
}

// Start runs the binary at bin on a free port of 127.0.0.1 and waits, at
// most 10 s, until its API answers. Stop ends it.
func Start(bin string) (*Server, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no toxiproxy server at %s (run `make toxiproxy` at the repository root): %w", bin, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{
		api:    "http://127.0.0.1:" + strconv.Itoa(port),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
		exited: make(chan struct{}),
		log:    new(bytes.Buffer),
	}
	s.cmd = exec.Command(bin, "-host", "127.0.0.1", "-port", strconv.Itoa(port))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := s.do("GET", "/version", nil, nil); err == nil {
			return s, nil
		} else if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("toxiproxy's API not ready within 10 s: %v", err)
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("toxiproxy exited before its API answered; its log:\n%s", s.log)
		case <-tick.C:
		}
	}
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

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
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Proxy forwards connections made to Listen to its upstream.
type Proxy struct {
	s      *Server
	Name   string
	Listen string // host:port to dial
}

// NewProxy creates a proxy that listens on a free port of 127.0.0.1 and
// forwards to upstream.
func (s *Server) NewProxy(name, upstream string) (*Proxy, error) {
	in := map[string]any{"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true}
	var out struct {
		Listen string `json:"listen"`
	}
	if err := s.do("POST", "/proxies", in, &out); err != nil {
		return nil, err
	}
	return &Proxy{s: s, Name: name, Listen: out.Listen}, nil
}

// Directions of a toxic.
const (
	Upstream   = "upstream"   // client to server
	Downstream = "downstream" // server to client
)

// AddBandwidth limits the given direction (Upstream or Downstream) of
// every connection to rate KB/s (toxiproxy's KB: 1000 bytes).
func (p *Proxy) AddBandwidth(name, stream string, rate int) error {
	in := map[string]any{"name": name, "type": "bandwidth", "stream": stream, "toxicity": 1,
		"attributes": map[string]any{"rate": rate}}
	return p.s.do("POST", "/proxies/"+url.PathEscape(p.Name)+"/toxics", in, nil)
}

// Delete removes the proxy and closes its connections.
func (p *Proxy) Delete() error {
	return p.s.do("DELETE", "/proxies/"+url.PathEscape(p.Name), nil, nil)
}
