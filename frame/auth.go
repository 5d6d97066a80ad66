package frame

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// NonceSize is the length of the nonce muxrpc sends in a CHALLENGE. A
// receiver accepts nonces of NonceSize to 255 bytes.
const NonceSize = 32

const (
	// maxNonceSize is the longest nonce: its length is one byte in the
	// proof's input.
	maxNonceSize = 255
	// proofSize is the length of a PROOF's body: an HMAC-SHA256.
	proofSize = sha256.Size
	// authLabel starts the input of every proof, so that a proof is
	// worth nothing outside this protocol and its version.
	authLabel = "muxrpc auth v1"
)

// NewNonce returns NonceSize bytes from crypto/rand, a fresh nonce for a
// CHALLENGE.
func NewNonce() ([]byte, error) {
	b := make([]byte, NonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("frame: making a nonce: %w", err)
	}
	return b, nil
}

// AuthProof returns the proof that the side whose CHALLENGE carried
// ownNonce, and which received peerNonce in the peer's CHALLENGE, holds
// key: the body of the PROOF it sends. client tells the side's role: true
// for the side that opened the stream (role C: the one that dialed,
// connected or started the other), false for the side that accepted it
// (role S). The proof is
//
//	HMAC-SHA256(key, "muxrpc auth v1" || role of the prover ('C' or 'S') ||
//	            u8(len(nonceC)) || nonceC || u8(len(nonceS)) || nonceS)
//
// where nonceC is the nonce of the side in role C. A side checks the PROOF
// it receives against AuthProof(key, peerNonce, ownNonce, !client) with
// hmac.Equal. The roles are fixed by who opened the stream, not chosen by
// the peer, so no side ever makes a proof in the role it expects from its
// peer: a peer without the key cannot get one to pass off as its own, on
// this stream or another. PROTOCOL.md describes the exchange.
//
// AuthProof fails with an error wrapping ErrMalformed if the nonces are
// equal (a peer that sends back this side's own nonce) or either is not
// NonceSize to 255 bytes long, and with another error if key is empty.
func AuthProof(key, ownNonce, peerNonce []byte, client bool) ([]byte, error) {
	if len(key) == 0 {
		return nil, errors.New("frame: empty authentication key")
	}
	for _, n := range [][]byte{ownNonce, peerNonce} {
		if len(n) < NonceSize || len(n) > maxNonceSize {
			return nil, fmt.Errorf("%w: nonce of %d bytes, want %d to %d", ErrMalformed, len(n), NonceSize, maxNonceSize)
		}
	}
	if bytes.Equal(ownNonce, peerNonce) {
		return nil, fmt.Errorf("%w: nonces are equal", ErrMalformed)
	}
	role, nonceC, nonceS := byte('C'), ownNonce, peerNonce
	if !client {
		role, nonceC, nonceS = 'S', peerNonce, ownNonce
	}
	mac := hmac.New(sha256.New, key)
	msg := make([]byte, 0, len(authLabel)+1+1+len(nonceC)+1+len(nonceS))
	msg = append(msg, authLabel...)
	msg = append(msg, role, byte(len(nonceC)))
	msg = append(msg, nonceC...)
	msg = append(msg, byte(len(nonceS)))
	msg = append(msg, nonceS...)
	mac.Write(msg)
	return mac.Sum(nil), nil
}
