package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/muxrpc/muxrpc/demux"
)

// startDemoServer serves the demo's methods on a loopback port until the
// test ends.
func startDemoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := demux.NewServer((&server{}).handler(0.01, false))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })
	return ln.Addr().String()
}

func TestServersThroughPool(t *testing.T) {
	watchdog(t, time.Minute)
	a, b := startDemoServer(t), startDemoServer(t)
	cfg := smallConfig("tcp", 10)
	cfg.Pool = poolConfig{Servers: a + "," + b, Conns: 2}
	var out bytes.Buffer
	if err := run(context.Background(), cfg, &out, io.Discard); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	rows := parseSummary(t, out.String())
	if got := rows["servers"]; !strings.Contains(got, a) || !strings.Contains(got, "2 connections each") {
		t.Errorf("servers row %q", got)
	}
	if !strings.Contains(out.String(), "pool: 2 endpoints, ") || !strings.Contains(out.String(), `0 calls failed as "may have run", 0 as "did not run"`) {
		t.Errorf("no pool line, or failures with both servers up:\n%s", out.String())
	}
}

func TestPoolFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-servers", "a:1", "-serve", "b:1"},
		{"-servers", "a:1", "-conns", "2"},
		{"-servers", "a:1", "-nested"},
		{"-servers", "a:1", "-pool-conns", "0"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	cfg, err := parseFlags([]string{"-servers", "a:1,b:2", "-pool-conns", "3"}, io.Discard)
	if err != nil || cfg.Pool.Servers != "a:1,b:2" || cfg.Pool.Conns != 3 {
		t.Errorf("parseFlags: %+v, %v", cfg.Pool, err)
	}
}
