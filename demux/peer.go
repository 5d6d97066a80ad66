package demux

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/muxrpc/muxrpc/internal/core"
)

// Peer describes the other end of the connection a request came on.
type Peer struct {
	// RemoteAddr and LocalAddr are the addresses of the connection's two
	// ends, when its stream is a net.Conn (or has RemoteAddr and LocalAddr
	// methods); nil otherwise, as over pipes and stdio.
	RemoteAddr net.Addr
	LocalAddr  net.Addr
	// TLS is the state of the TLS connection, with the certificates the
	// peer presented, when the stream is a *tls.Conn (or has a
	// ConnectionState method); nil otherwise.
	TLS *tls.ConnectionState
}

// PeerFromContext describes the peer whose request a handler's ctx (or a
// context derived from it) belongs to. It returns false for a context that
// no handler received. To call the peer back, use mux.FromContext.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	conn := core.FromContext(ctx)
	if conn == nil {
		return Peer{}, false
	}
	var p Peer
	rwc := conn.Transport()
	if a, ok := rwc.(interface{ RemoteAddr() net.Addr }); ok {
		p.RemoteAddr = a.RemoteAddr()
	}
	if a, ok := rwc.(interface{ LocalAddr() net.Addr }); ok {
		p.LocalAddr = a.LocalAddr()
	}
	if s, ok := rwc.(interface {
		ConnectionState() tls.ConnectionState
	}); ok {
		state := s.ConnectionState()
		p.TLS = &state
	}
	return p, true
}
