package mux

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/muxrpc/muxrpc/internal/core"
	"github.com/muxrpc/muxrpc/internal/sockopt"
)

// Dial connects to address on the named network, as net.Dialer's
// DialContext does ("tcp", "unix" and the rest), and returns a Mux over the
// connection, whose other end must be served by a demux.DeMux. ctx bounds
// the connecting only: once Dial has returned, ending ctx does not affect
// the Mux. The Mux owns the connection; Close closes it.
//
// Keepalive is on (DefaultKeepaliveInterval, DefaultKeepaliveTimeout), and
// the peer's preface must arrive within DefaultHandshakeTimeout (see
// HandshakeTimeout), unless opts say otherwise. A TCP connection gets
// TCP_USER_TIMEOUT set to DefaultKeepaliveInterval +
// DefaultKeepaliveTimeout where the system has it, so that writes to a
// peer that vanished fail in that time rather than after the system's
// retransmission timeout (about 15 min).
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
	opts = withDefaults(append([]Option{HandshakeTimeout(DefaultHandshakeTimeout)}, opts...))
	if cfg := core.NewConfig(opts); cfg.TLS != nil {
		tlsCfg := cfg.TLS
		if tlsCfg.ServerName == "" { // as tls.Dial does: the name dialed
			tlsCfg = tlsCfg.Clone()
			tlsCfg.ServerName, _, _ = net.SplitHostPort(address)
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("mux: dial %q: TLS handshake: %w", address, err)
		}
		conn = tc
	}
	return New(conn, opts...), nil
}

// TLS makes Dial run TLS over the connection it dials, as a client with
// cfg, and complete the handshake (within Dial's ctx) before it returns:
// a server whose certificate does not verify fails Dial. cfg is used as
// tls.Client uses it; set ServerName if the address is not the name in
// the certificate, and Certificates to present a client certificate.
// New and Start ignore it: give New a *tls.Conn instead.
func TLS(cfg *tls.Config) Option {
	return func(c *core.Config) { c.TLS = cfg }
}

// withDefaults puts the keepalive that Dial and Start use before opts, so
// that opts can change it.
func withDefaults(opts []Option) []Option {
	return append([]Option{Keepalive(DefaultKeepaliveInterval, DefaultKeepaliveTimeout)}, opts...)
}
