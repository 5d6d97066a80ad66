package mux

import (
	"context"
	"fmt"
	"net"

	"github.com/muxrpc/muxrpc/internal/sockopt"
)

// Dial connects to address on the named network, as net.Dialer's
// DialContext does ("tcp", "unix" and the rest), and returns a Mux over the
// connection, whose other end must be served by a demux.DeMux. ctx bounds
// the connecting only: once Dial has returned, ending ctx does not affect
// the Mux. The Mux owns the connection; Close closes it.
//
// Keepalive is on (DefaultKeepaliveInterval, DefaultKeepaliveTimeout)
// unless opts say otherwise, and a TCP connection gets TCP_USER_TIMEOUT
// set to DefaultKeepaliveInterval + DefaultKeepaliveTimeout where the
// system has it, so that writes to a peer that vanished fail in that time
// rather than after the system's retransmission timeout (about 15 min).
//
// A failure to connect is returned with the address named; if ctx ended
// first, errors.Is(err, ctx.Err()) holds.
func Dial(ctx context.Context, network, address string, opts ...Option) (*Mux, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("mux: dial %q: %w", address, err)
	}
	sockopt.SetUserTimeout(conn, DefaultKeepaliveInterval+DefaultKeepaliveTimeout)
	return New(conn, withDefaults(opts)...), nil
}

// withDefaults puts the keepalive that Dial and Start use before opts, so
// that opts can change it.
func withDefaults(opts []Option) []Option {
	return append([]Option{Keepalive(DefaultKeepaliveInterval, DefaultKeepaliveTimeout)}, opts...)
}
