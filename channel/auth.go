package channel

import (
	"crypto/hmac"
	"fmt"
	"io"
	"time"

	"github.com/muxrpc/muxrpc/frame"
)

// auth is the state of the authentication handshake (PROTOCOL.md): each
// side sends a CHALLENGE with a fresh nonce right after its preface, answers
// the peer's CHALLENGE with a PROOF of the shared key over both nonces, and
// accepts no other frame, and sends none, until the peer's PROOF checks out.
type auth struct {
	key    []byte
	client bool          // this side opened the stream: role C, not S
	nonce  []byte        // this side's nonce
	proof  chan []byte   // the reader hands the writer this side's PROOF
	authed chan struct{} // closed by the reader once the peer's PROOF checks out
	asked  chan struct{} // closed by the writer once this side's CHALLENGE is written
}

// newAuth prepares the handshake for key, in role C if client, or returns
// nil if key is empty.
func newAuth(key []byte, client bool) (*auth, error) {
	if len(key) == 0 {
		return nil, nil
	}
	nonce, err := frame.NewNonce()
	if err != nil {
		return nil, fmt.Errorf("channel: making a nonce: %w", err)
	}
	return &auth{key: key, client: client, nonce: nonce, proof: make(chan []byte, 1), authed: make(chan struct{}), asked: make(chan struct{})}, nil
}

// authenticate is the reader's side of the handshake: it reads the peer's
// CHALLENGE, hands this side's PROOF to the writer, then reads and checks
// the peer's PROOF. Every failure wraps ErrAuth.
func (c *Conn) authenticate(r frame.Reader) error {
	a := c.auth
	var f frame.Frame
	r.SetTypeFilter(a.filter(frame.TypeChallenge))
	if err := r.ReadFrame(&f); err != nil {
		return authError("waiting for the peer's CHALLENGE", err)
	}
	peerNonce := append([]byte(nil), f.Payload...)
	f.Release()
	proof, err := frame.AuthProof(a.key, a.nonce, peerNonce, a.client)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	a.proof <- proof // never blocks: one PROOF, buffered
	r.SetTypeFilter(a.filter(frame.TypeProof))
	if err := r.ReadFrame(&f); err != nil {
		return authError("waiting for the peer's PROOF", err)
	}
	want, err := frame.AuthProof(a.key, peerNonce, a.nonce, !a.client)
	ok := err == nil && hmac.Equal(f.Payload, want)
	f.Release()
	if !ok {
		return fmt.Errorf("%w: the peer's PROOF does not match: it holds another key, or opened the stream as this side did", ErrAuth)
	}
	close(a.authed)
	return nil
}

// authError wraps the error that ended the handshake while waiting for
// what, so that it says ErrAuth and keeps its cause.
func authError(what string, err error) error {
	if err == io.EOF {
		return fmt.Errorf("%w: the peer closed the stream %s: %w", ErrAuth, what, io.EOF)
	}
	return fmt.Errorf("%w: %s: %w", ErrAuth, what, err)
}

// filter is the type check in force during the handshake: only the
// frame expected next is accepted, before its body is read.
func (a *auth) filter(want frame.Type) func(frame.Type) error {
	return func(t frame.Type) error {
		if t == want {
			return nil
		}
		if t == frame.TypeChallenge || t == frame.TypeProof {
			return fmt.Errorf("%w: the peer sent %v where %v was due", ErrAuth, t, want)
		}
		return fmt.Errorf("%w: the peer sent %v before authenticating: it has no AuthKey", ErrAuth, t)
	}
}

// writeAuth is the writer's side of the handshake: it sends this side's
// CHALLENGE, then its PROOF once the reader has it, then waits until the
// peer's PROOF checks out before any other frame may leave. It reports
// false if the Conn died first.
func (c *Conn) writeAuth(w frame.Writer) bool {
	a := c.auth
	challenge := frame.Frame{Type: frame.TypeChallenge, Payload: a.nonce}
	if c.flushed(w, w.WriteFrame(&challenge), true) != nil {
		return false
	}
	close(a.asked)
	var proof []byte
	select {
	case proof = <-a.proof:
	case <-c.done:
		return false
	}
	p := frame.Frame{Type: frame.TypeProof, Payload: proof}
	if c.flushed(w, w.WriteFrame(&p), true) != nil {
		return false
	}
	select {
	case <-a.authed:
		return true
	case <-c.done:
		return false
	}
}

// askedGrace bounds how long a side that refuses a peer during the
// handshake waits for its own CHALLENGE to leave before it closes the
// stream, so that a peer without the key learns why from the CHALLENGE
// instead of seeing the stream end before a preface.
const askedGrace = time.Second

// waitAsked waits, up to askedGrace, until this side's CHALLENGE has been
// written or the Conn has died.
func (c *Conn) waitAsked() {
	t := time.NewTimer(askedGrace)
	defer t.Stop()
	select {
	case <-c.auth.asked:
	case <-c.done:
	case <-t.C:
	}
}
