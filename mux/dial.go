package mux

import (
	"context"
	"fmt"
	"net"
)

// Dial connects to address on the named network, as net.Dialer's
// DialContext does ("tcp", "unix" and the rest), and returns a Mux over the
// connection, whose other end must be served by a demux.DeMux. ctx bounds
// the connecting only: once Dial has returned, ending ctx does not affect
// the Mux. The Mux owns the connection; Close closes it.
//
// A failure to connect is returned with the address named; if ctx ended
// first, errors.Is(err, ctx.Err()) holds.
func Dial(ctx context.Context, network, address string, opts ...Option) (*Mux, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("mux: dial %q: %w", address, err)
	}
	return New(conn, opts...), nil
}
