package demux_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/muxrpc/muxrpc/demux"
	"github.com/muxrpc/muxrpc/frame"
	"github.com/muxrpc/muxrpc/internal/rpctest"
	"github.com/muxrpc/muxrpc/mux"
)

// bound is how long a test waits for anything before it fails.
const bound = 10 * time.Second

// recv waits for a value from ch, failing the test if none comes in time.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("%s did not happen within %v", what, bound)
		var zero T
		return zero
	}
}

// serving is a Serve running in the background.
type serving chan error

// wait waits for Serve to return and returns its error. It may be called
// more than once.
func (sv serving) wait(t *testing.T) error {
	t.Helper()
	err := recv(t, sv, "Serve's return")
	sv <- err
	return err
}

// startServer serves s on ln in the background. Cleanup closes s and waits
// for Serve.
func startServer(t *testing.T, s *demux.Server, ln net.Listener) serving {
	sv := make(serving, 1)
	go func() { sv <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		sv.wait(t)
	})
	return sv
}

// listen listens on a fresh TCP port of 127.0.0.1 or a unix socket in a
// temporary directory.
func listen(t *testing.T, network string) net.Listener {
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	require.NoError(t, err)
	return ln
}

// dial connects a Mux to addr. Cleanup closes it.
func dial(t *testing.T, addr net.Addr) *mux.Mux {
	conn, err := net.Dial(addr.Network(), addr.String())
	require.NoError(t, err)
	m := mux.New(conn)
	t.Cleanup(func() { m.Close() })
	return m
}

// hello calls echo with s and checks the reply, within the bound.
func hello(t *testing.T, m *mux.Mux, s string) {
	t.Helper()
	require.NoError(t, callEcho(m, s))
}

// callEcho calls echo with s, within the bound, and checks the reply.
func callEcho(m *mux.Mux, s string) error {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var out string
	if err := m.Call(ctx, "echo", s, &out); err != nil {
		return err
	}
	if out != s {
		return fmt.Errorf("echo %q returned %q", s, out)
	}
	return nil
}

// waitCall waits for call to finish, within the bound.
func waitCall(t *testing.T, call *mux.Call, what string) error {
	t.Helper()
	recv(t, call.Done(), what)
	return call.Err()
}

func TestServerServesManyClientsOnSeveralListeners(t *testing.T) {
	const clients, calls = 6, 16
	s := demux.NewServer(echo())
	lns := []net.Listener{listen(t, "tcp"), listen(t, "unix")}
	for _, ln := range lns {
		startServer(t, s, ln)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(lns)*clients*calls)
	for _, ln := range lns {
		for c := range clients {
			m := dial(t, ln.Addr())
			for i := range calls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- callEcho(m, fmt.Sprintf("%s client %d call %d", ln.Addr().Network(), c, i))
				}()
			}
		}
	}
	for range len(lns) * clients * calls {
		assert.NoError(t, recv(t, errs, "a call's end"))
	}
	wg.Wait()
}

// selfSigned makes an ECDSA certificate for 127.0.0.1 that signs itself
// and serves for both server and client authentication.
func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}

func TestServerOverTLS(t *testing.T) {
	serverCert, serverX509 := selfSigned(t, "server")
	clientCert, clientX509 := selfSigned(t, "client")
	roots := x509.NewCertPool()
	roots.AddCert(serverX509)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientX509)

	// dialTLS connects a Mux over TLS to ln, with cert if it is not nil.
	dialTLS := func(t *testing.T, ln net.Listener, cert *tls.Certificate) *mux.Mux {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		m, err := mux.Dial(rpctest.Context(t), "tcp", ln.Addr().String(), mux.TLS(cfg))
		require.NoError(t, err)
		t.Cleanup(func() { m.Close() })
		return m
	}

	t.Run("a server whose certificate does not verify fails Dial", func(t *testing.T) {
		s := demux.NewServer(echo())
		ln := listen(t, "tcp")
		startServer(t, s, tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			MinVersion:   tls.VersionTLS13,
		}))
		_, err := mux.Dial(rpctest.Context(t), "tcp", ln.Addr().String(), mux.TLS(&tls.Config{MinVersion: tls.VersionTLS13}))
		var unknown x509.UnknownAuthorityError
		require.ErrorAs(t, err, &unknown)
		assert.Contains(t, err.Error(), "TLS handshake")
	})

	t.Run("server certificate", func(t *testing.T) {
		s := demux.NewServer(echo())
		ln := listen(t, "tcp")
		startServer(t, s, tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			MinVersion:   tls.VersionTLS13,
		}))
		for i := range 3 {
			hello(t, dialTLS(t, ln, nil), fmt.Sprint("over TLS ", i))
		}
	})

	t.Run("mutual", func(t *testing.T) {
		s := demux.NewServer(echo())
		ln := listen(t, "tcp")
		startServer(t, s, tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    clientCAs,
			MinVersion:   tls.VersionTLS13,
		}))
		// With TLS 1.3 the client's handshake ends before the server
		// checks the client: the refusal comes as the stream fails.
		err := callEcho(dialTLS(t, ln, nil), "no certificate")
		require.ErrorIs(t, err, mux.ErrClosed, "a client without a certificate is refused")
		hello(t, dialTLS(t, ln, &clientCert), "with a certificate")
	})

	t.Run("the handler sees the client's certificate", func(t *testing.T) {
		names := make(chan string, 1)
		h := demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
			p, ok := demux.PeerFromContext(ctx)
			if !ok || p.TLS == nil || len(p.TLS.PeerCertificates) == 0 {
				return nil, fmt.Errorf("no TLS peer in the handler's context: %+v", p)
			}
			names <- p.TLS.PeerCertificates[0].Subject.CommonName
			return "hi", nil
		})
		s := demux.NewServer(h)
		ln := listen(t, "tcp")
		startServer(t, s, tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    clientCAs,
			MinVersion:   tls.VersionTLS13,
		}))
		m := dialTLS(t, ln, &clientCert)
		require.NoError(t, m.Call(rpctest.Context(t), "who", nil, nil))
		assert.Equal(t, "client", recv(t, names, "the handler did not report the certificate"))
	})
}

func TestServerMaxConns(t *testing.T) {
	s := demux.NewServer(echo(), demux.MaxConns(2))
	ln := listen(t, "tcp")
	startServer(t, s, ln)
	first, second := dial(t, ln.Addr()), dial(t, ln.Addr())
	hello(t, first, "first")
	hello(t, second, "second") // both are being served now

	err := callEcho(dial(t, ln.Addr()), "third")
	require.ErrorIs(t, err, mux.ErrClosed, "a connection past MaxConns is closed at once")
	hello(t, first, "first again")
	hello(t, second, "second again")

	require.NoError(t, first.Close())
	// The server sees the hang-up soon, not at once: dial until a new
	// connection is served.
	deadline := time.Now().Add(bound)
	for {
		conn, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		m := mux.New(conn)
		err = callEcho(m, "replacement")
		if err == nil {
			t.Cleanup(func() { m.Close() })
			break
		}
		m.Close()
		require.ErrorIs(t, err, mux.ErrClosed)
		if time.Now().After(deadline) {
			t.Fatalf("no connection was served within %v of a served one closing: %v", bound, err)
		}
	}
	hello(t, second, "second still")
}

// blockingRouter serves echo, and block, which parks until release is
// closed or its context ends, announcing itself on started and then the
// end of its context, if it ends, on ended.
func blockingRouter() (r *demux.Router, started chan struct{}, release chan struct{}, ended chan error) {
	r = echo()
	started, release, ended = make(chan struct{}, 1), make(chan struct{}), make(chan error, 1)
	r.Handle("block", demux.HandlerFunc(func(ctx context.Context, _ *demux.Request) (any, error) {
		started <- struct{}{}
		select {
		case <-release:
			return "released", nil
		case <-ctx.Done():
			ended <- ctx.Err()
			return nil, ctx.Err()
		}
	}))
	return r, started, release, ended
}

func TestServerShutdownLetsCallsInFlightFinish(t *testing.T) {
	router, started, release, _ := blockingRouter()
	s := demux.NewServer(router)
	ln := listen(t, "tcp")
	served := startServer(t, s, ln)
	m := dial(t, ln.Addr())
	var reply string
	inFlight := m.Go(context.Background(), "block", nil, &reply)
	recv(t, started, "the blocking handler's start")

	shutdown := make(chan error, 1)
	go func() { shutdown <- s.Shutdown(context.Background()) }()
	// Calls work until the server starts shutting down, and then fail:
	// sent after the GOAWAY has come, or refused by the server before it.
	deadline := time.Now().Add(bound)
	var err error
	for err == nil {
		if time.Now().After(deadline) {
			t.Fatalf("new calls still worked %v after Shutdown was called", bound)
		}
		err = callEcho(m, "during shutdown")
	}
	var re *frame.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, frame.CodeShutdown, re.Code)

	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with a call in flight", err)
	default:
	}
	close(release)
	require.NoError(t, waitCall(t, inFlight, "the in-flight call's reply"))
	assert.Equal(t, "released", reply)
	require.NoError(t, recv(t, shutdown, "Shutdown's return"))
	require.ErrorIs(t, served.wait(t), demux.ErrServerClosed)

	_, err = net.Dial("tcp", ln.Addr().String())
	require.Error(t, err, "the listener is closed")
	require.ErrorIs(t, callEcho(m, "after shutdown"), mux.ErrClosed)
}

func TestServerShutdownContextEnds(t *testing.T) {
	router, started, _, ended := blockingRouter()
	s := demux.NewServer(router)
	ln := listen(t, "tcp")
	served := startServer(t, s, ln)
	m := dial(t, ln.Addr())
	inFlight := m.Go(context.Background(), "block", nil, nil)
	recv(t, started, "the blocking handler's start")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.Shutdown(ctx) }()
	require.ErrorIs(t, recv(t, shutdown, "Shutdown's return"), context.DeadlineExceeded)
	assert.ErrorIs(t, recv(t, ended, "the handler's context ending"), context.Canceled)
	assert.ErrorIs(t, waitCall(t, inFlight, "the in-flight call's end"), mux.ErrClosed)
	require.ErrorIs(t, served.wait(t), demux.ErrServerClosed)
}

func TestServerClose(t *testing.T) {
	router, started, _, ended := blockingRouter()
	s := demux.NewServer(router)
	ln := listen(t, "tcp")
	served := startServer(t, s, ln)
	m := dial(t, ln.Addr())
	inFlight := m.Go(context.Background(), "block", nil, nil)
	recv(t, started, "the blocking handler's start")

	require.NoError(t, s.Close())
	assert.ErrorIs(t, recv(t, ended, "the handler's context ending"), context.Canceled)
	assert.ErrorIs(t, waitCall(t, inFlight, "the in-flight call's end"), mux.ErrClosed)
	require.ErrorIs(t, served.wait(t), demux.ErrServerClosed)
	require.NoError(t, s.Close(), "a second Close")
	require.NoError(t, s.Shutdown(rpctest.Context(t)), "Shutdown after Close")
}

func TestServeAfterCloseReturnsAtOnce(t *testing.T) {
	s := demux.NewServer(echo())
	require.NoError(t, s.Close())
	ln := listen(t, "tcp")
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	require.ErrorIs(t, recv(t, served, "Serve's return"), demux.ErrServerClosed)
	_, err := ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed, "Serve closes its listener")
}

// timeoutError is an accept error that may pass.
type timeoutError struct{}

func (timeoutError) Error() string   { return "accept timed out" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// fakeListener returns what is sent on results from Accept, and
// net.ErrClosed once closed.
type fakeListener struct {
	results   chan accepted
	closed    chan struct{}
	closeOnce sync.Once
}

type accepted struct {
	conn net.Conn
	err  error
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case r := <-l.results:
		return r.conn, r.err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fakeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *fakeListener) Addr() net.Addr { return &net.UnixAddr{Name: "fake", Net: "fake"} }

// lockedBuffer is a bytes.Buffer for a logger that many goroutines use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestServeRetriesTemporaryAcceptErrors(t *testing.T) {
	client, server := net.Pipe()
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept", syscall.EMFILE)}
	ln := &fakeListener{results: make(chan accepted, 4), closed: make(chan struct{})}
	ln.results <- accepted{err: timeoutError{}}
	ln.results <- accepted{err: emfile}
	ln.results <- accepted{err: timeoutError{}}
	ln.results <- accepted{conn: server}

	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := demux.NewServer(echo(), demux.Logger(logger))
	served := startServer(t, s, ln)
	m := mux.New(client)
	t.Cleanup(func() { m.Close() })
	hello(t, m, "after three failed accepts")

	// An error that does not pass ends Serve, which closes the listener.
	boom := errors.New("boom")
	ln.results <- accepted{err: boom}
	require.ErrorIs(t, served.wait(t), boom)
	recv(t, ln.closed, "the listener's closing")
	hello(t, m, "served after Serve returned")
	assert.Contains(t, logs.String(), "accept timed out")
	assert.Contains(t, logs.String(), "too many open files")
}
