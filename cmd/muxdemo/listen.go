package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
)

// dialTimeout bounds the connecting of each client in -conns mode.
const dialTimeout = 5 * time.Second

// startServer starts the sides of -conns mode: a demux.Server serving h on
// a listener (a unix socket for -transport unix, TCP on 127.0.0.1
// otherwise) and cfg.Conns Muxes connected to it by mux.Dial, which serve
// the callbacks of -nested mode, counting them in st. stop shuts the
// Server down gracefully, then closes the clients.
func startServer(cfg config, h demux.Handler, st *stats) (*sides, error) {
	ln, cleanup, err := listen(cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("listening for -conns: %w", err)
	}
	network, address := ln.Addr().Network(), ln.Addr().String()
	srv := demux.NewServer(h, demux.Workers(cfg.Workers))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }() // waited for by shutdownServer
	stop := func(clients []*mux.Mux) error {
		err := shutdownServer(srv, served, clients)
		cleanup()
		return err
	}

	// Dialing is part of setting up, not of the run: an interrupt does not
	// cut it short, the dial timeout does.
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	clients := make([]*mux.Mux, 0, cfg.Conns)
	for i := range cfg.Conns {
		m, err := mux.Dial(ctx, network, address, clientOptions(cfg, i, st)...)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("connecting client %d: %w", i, err), stop(clients))
		}
		clients = append(clients, m)
	}
	return &sides{
		clients:  clients,
		listener: network + " " + address,
		stop:     func() error { return stop(clients) },
	}, nil
}

// listen returns a listener for the transport: a unix socket in a fresh
// temporary directory for "unix", which cleanup removes, and TCP on a free
// port of 127.0.0.1 for the others.
func listen(transport string) (ln net.Listener, cleanup func(), err error) {
	if transport != "unix" {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return ln, func() {}, err
	}
	dir, err := os.MkdirTemp("", "muxdemo")
	if err != nil {
		return nil, nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	ln, err = net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return ln, cleanup, nil
}

// shutdownServer shuts the Server down gracefully (every connection is
// told to send no new calls, its calls in flight are answered, then it is
// closed), waits for Serve to return, then closes the clients. It returns
// what went wrong, if anything did.
func shutdownServer(srv *demux.Server, served <-chan error, clients []*mux.Mux) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("Server.Shutdown: %w", err))
	}
	if err := <-served; !errors.Is(err, demux.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("Server.Serve: %w", err))
	}
	for i, m := range clients {
		if err := m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("Mux.Close of connection %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
