package frame

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAuthProofGolden checks AuthProof against the vectors PROTOCOL.md
// gives: proof.hex is what the side in role S sends.
func TestAuthProofGolden(t *testing.T) {
	proofS, err := AuthProof(goldenKey, goldenNonceS, goldenNonceC, false)
	require.NoError(t, err)
	assert.Equal(t, goldenProofS, proofS)
	want, err := parseFrameBody(readGolden(t, "proof.hex"))
	require.NoError(t, err)
	assert.Equal(t, want, proofS, "the body of proof.hex")

	proofC, err := AuthProof(goldenKey, goldenNonceC, goldenNonceS, true)
	require.NoError(t, err)
	assert.Equal(t, goldenProofC, proofC)
	assert.NotEqual(t, proofC, proofS, "the role makes the two proofs differ")

	nonce, err := parseFrameBody(readGolden(t, "challenge.hex"))
	require.NoError(t, err)
	assert.Equal(t, goldenNonceC, nonce, "the body of challenge.hex")
}

// parseFrameBody returns the body of the one frame in b.
func parseFrameBody(b []byte) ([]byte, error) {
	f, err := readOne(b, 0)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(f.Payload), nil
}

// TestAuthProofVerifies runs the exchange as two sides do: each checks
// the other's proof by computing it with the nonces and the role swapped.
func TestAuthProofVerifies(t *testing.T) {
	key := []byte("a key")
	nc, err := NewNonce()
	require.NoError(t, err)
	ns, err := NewNonce()
	require.NoError(t, err)
	require.Len(t, nc, NonceSize)
	require.NotEqual(t, nc, ns)

	pc, err := AuthProof(key, nc, ns, true) // the client proves
	require.NoError(t, err)
	ps, err := AuthProof(key, ns, nc, false) // the server proves
	require.NoError(t, err)
	require.Len(t, pc, proofSize)

	checkC, err := AuthProof(key, nc, ns, true) // the server checks the client's proof
	require.NoError(t, err)
	assert.True(t, hmac.Equal(checkC, pc))
	checkS, err := AuthProof(key, ns, nc, false)
	require.NoError(t, err)
	assert.True(t, hmac.Equal(checkS, ps))
	assert.False(t, hmac.Equal(pc, ps), "a side's own proof, sent back, does not pass")

	other, err := AuthProof([]byte("another key"), nc, ns, true)
	require.NoError(t, err)
	assert.False(t, hmac.Equal(other, pc), "another key gives another proof")
	n3, err := NewNonce()
	require.NoError(t, err)
	replay, err := AuthProof(key, nc, n3, true)
	require.NoError(t, err)
	assert.False(t, hmac.Equal(replay, pc), "a proof is bound to the verifier's nonce")
}

// TestAuthProofTwoStreams is the relay a peer without the key would try
// with two streams to one server: it sends as its nonce on stream 1 the
// server's nonce of stream 2, and the other way round, and offers on
// stream 1 the PROOF the server sent on stream 2. The server's proofs are
// all made in role S, and it expects role C: the relay fails.
func TestAuthProofTwoStreams(t *testing.T) {
	key := []byte("the server's key")
	n1, n2 := seq(1, NonceSize), seq(100, NonceSize) // the server's nonces on streams 1 and 2
	sent2, err := AuthProof(key, n2, n1, false)      // stream 2: the attacker's nonce is n1
	require.NoError(t, err)
	want1, err := AuthProof(key, n2, n1, true) // stream 1: the attacker's nonce is n2
	require.NoError(t, err)
	assert.False(t, hmac.Equal(sent2, want1), "the server's PROOF on one stream passes as the client's on another")
}

// TestAuthProofLengths checks that both nonces' lengths are bound: moving
// a byte from one nonce to the other changes the proof.
func TestAuthProofLengths(t *testing.T) {
	key := []byte("k")
	a := bytes.Repeat([]byte{1}, NonceSize+1)
	b := append(bytes.Repeat([]byte{1}, NonceSize), 2)
	a2 := bytes.Repeat([]byte{1}, NonceSize)
	b2 := append(bytes.Repeat([]byte{1}, NonceSize+1), 2)
	x, err := AuthProof(key, a, b, true)
	require.NoError(t, err)
	y, err := AuthProof(key, a2, b2, true)
	require.NoError(t, err)
	assert.NotEqual(t, x, y)
}

func TestAuthProofRejects(t *testing.T) {
	n := seq(1, NonceSize)
	_, err := AuthProof([]byte("k"), n, bytes.Clone(n), true)
	assert.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "nonces are equal")

	for _, size := range []int{0, NonceSize - 1, maxNonceSize + 1} {
		_, err = AuthProof([]byte("k"), make([]byte, size), n, true)
		assert.ErrorIs(t, err, ErrMalformed, "own nonce of %d bytes", size)
		_, err = AuthProof([]byte("k"), n, make([]byte, size), false)
		assert.ErrorIs(t, err, ErrMalformed, "peer nonce of %d bytes", size)
	}
	_, err = AuthProof([]byte("k"), make([]byte, maxNonceSize), n, true)
	assert.NoError(t, err, "a 255-byte nonce")

	_, err = AuthProof(nil, n, seq(2, NonceSize), true)
	assert.Error(t, err, "empty key")
	assert.NotErrorIs(t, err, ErrMalformed)
}

// FuzzAuthProof checks AuthProof against refAuthProof, a plain reading of
// PROTOCOL.md section 18, on any key, nonces and role: both fail, or both
// give the same proof; and the two sides' proofs of one exchange differ.
func FuzzAuthProof(f *testing.F) {
	f.Add(goldenKey, goldenNonceC, goldenNonceS, true)
	f.Add(goldenKey, goldenNonceS, goldenNonceC, false)
	f.Add(goldenKey, goldenNonceC, goldenNonceC, true)
	f.Add([]byte{}, goldenNonceC, goldenNonceS, true)
	f.Add(goldenKey, seq(0, maxNonceSize), append(seq(0, maxNonceSize-1), 0xff), false)
	f.Add(goldenKey, seq(0, NonceSize-1), goldenNonceS, true)
	f.Add(bytes.Repeat([]byte("k"), 100), seq(1, NonceSize), seq(1, NonceSize+1), true)
	f.Fuzz(func(t *testing.T, key, own, peer []byte, client bool) {
		got, err := AuthProof(key, own, peer, client)
		want, ok := refAuthProof(key, own, peer, client)
		if !ok {
			require.Error(t, err)
			if len(key) > 0 {
				require.ErrorIs(t, err, ErrMalformed)
			}
			require.Nil(t, got)
			return
		}
		require.NoError(t, err)
		require.Equal(t, want, got)
		other, err := AuthProof(key, peer, own, !client)
		require.NoError(t, err)
		require.False(t, hmac.Equal(got, other), "the two sides' proofs are equal")
	})
}

// refAuthProof computes a proof as PROTOCOL.md describes it, byte by byte.
func refAuthProof(key, own, peer []byte, client bool) ([]byte, bool) {
	if len(key) == 0 || string(own) == string(peer) {
		return nil, false
	}
	for _, n := range [][]byte{own, peer} {
		if len(n) < 32 || len(n) > 255 {
			return nil, false
		}
	}
	role, c, s := byte(0x53), peer, own // 'S'
	if client {
		role, c, s = 0x43, own, peer // 'C'
	}
	msg := []byte{0x6d, 0x75, 0x78, 0x72, 0x70, 0x63, 0x20, 0x61, 0x75, 0x74, 0x68, 0x20, 0x76, 0x31, role}
	msg = append(msg, byte(len(c)))
	msg = append(msg, c...)
	msg = append(msg, byte(len(s)))
	msg = append(msg, s...)
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	return mac.Sum(nil), true
}
