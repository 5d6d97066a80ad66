package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/internal/transport"
	"github.com/muxrpc/muxrpc/mux"
)

// startPair starts the demo's default sides: a DeMux serving h and one
// Mux, connected by a pair of cfg.Transport. The Mux serves the callbacks
// of -nested mode, counting them in st. stop shuts both down.
func startPair(cfg config, h demux.Handler, st *stats) (*sides, error) {
	clientEnd, serverEnd, err := transport.Pair(transport.Kind(cfg.Transport))
	if err != nil {
		return nil, fmt.Errorf("making a %s pair: %w", cfg.Transport, err)
	}
	d := demux.New(serverEnd, h, demux.Workers(cfg.Workers))
	served := make(chan error, 1)
	go func() { served <- d.Serve() }() // waited for by shutdownPair
	m := mux.New(clientEnd, clientOptions(cfg, 0, st)...)
	return &sides{
		clients: []*mux.Mux{m},
		stop:    func() error { return shutdownPair(d, served, m) },
	}, nil
}

// shutdownPair stops the DeMux gracefully, waits for Serve to return, then
// closes the client. It returns what went wrong, if anything did.
func shutdownPair(d *demux.DeMux, served <-chan error, m *mux.Mux) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	if err := d.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("DeMux.Shutdown: %w", err))
	}
	if err := <-served; err != nil {
		errs = append(errs, fmt.Errorf("DeMux.Serve: %w", err))
	}
	if err := m.Close(); err != nil {
		errs = append(errs, fmt.Errorf("Mux.Close: %w", err))
	}
	return errors.Join(errs...)
}
