//go:build linux

package demux_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/mux"
)

// recordingListener passes on what its Listener accepts, and sends each
// connection on accepted.
type recordingListener struct {
	net.Listener
	accepted chan net.Conn
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- c
	}
	return c, err
}

// userTimeout reads TCP_USER_TIMEOUT (18 in linux/tcp.h) back from c.
func userTimeout(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var ms int
	var serr error
	require.NoError(t, raw.Control(func(fd uintptr) {
		ms, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, 18)
	}))
	require.NoError(t, serr)
	return time.Duration(ms) * time.Millisecond
}

func TestServerSetsTCPUserTimeout(t *testing.T) {
	serverCert, serverX509 := selfSigned(t, "server")
	roots := x509.NewCertPool()
	roots.AddCert(serverX509)
	cases := []struct {
		name string
		opts []demux.Option
		want time.Duration // zero: the system's default, which is zero
		tls  bool
	}{
		{name: "default", want: 30 * time.Second},
		{name: "option", opts: []demux.Option{demux.TCPUserTimeout(1500 * time.Millisecond)}, want: 1500 * time.Millisecond},
		{name: "off", opts: []demux.Option{demux.TCPUserTimeout(0)}},
		{name: "under TLS", want: 30 * time.Second, tls: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln := &recordingListener{Listener: listen(t, "tcp"), accepted: make(chan net.Conn, 1)}
			var served net.Listener = ln
			if tc.tls {
				served = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS13})
			}
			startServer(t, demux.NewServer(echo(), tc.opts...), served)
			var m *mux.Mux
			if tc.tls {
				conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13})
				require.NoError(t, err)
				m = mux.New(conn)
				t.Cleanup(func() { m.Close() })
			} else {
				m = dial(t, ln.Addr())
			}
			hello(t, m, "served") // the DeMux, which sets it, was made before this was read
			assert.Equal(t, tc.want, userTimeout(t, recv(t, ln.accepted, "the accept")))
		})
	}
}
