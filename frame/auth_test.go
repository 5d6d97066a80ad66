package frame

import (
	"bytes"
	"crypto/hmac"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAuthProofGolden checks AuthProof against the vectors PROTOCOL.md
// gives: proof.hex is what the side in role B sends.
func TestAuthProofGolden(t *testing.T) {
	proofB, err := AuthProof(goldenKey, goldenNonceB, goldenNonceA)
	require.NoError(t, err)
	assert.Equal(t, goldenProofB, proofB)
	want, err := parseFrameBody(readGolden(t, "proof.hex"))
	require.NoError(t, err)
	assert.Equal(t, want, proofB, "the body of proof.hex")

	proofA, err := AuthProof(goldenKey, goldenNonceA, goldenNonceB)
	require.NoError(t, err)
	assert.Equal(t, goldenProofA, proofA)
	assert.NotEqual(t, proofA, proofB, "the role makes the two proofs differ")

	nonce, err := parseFrameBody(readGolden(t, "challenge.hex"))
	require.NoError(t, err)
	assert.Equal(t, goldenNonceA, nonce, "the body of challenge.hex")
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
// the other's proof by computing it with the nonces swapped.
func TestAuthProofVerifies(t *testing.T) {
	key := []byte("a key")
	n1, err := NewNonce()
	require.NoError(t, err)
	n2, err := NewNonce()
	require.NoError(t, err)
	require.Len(t, n1, NonceSize)
	require.NotEqual(t, n1, n2)

	p1, err := AuthProof(key, n1, n2) // side 1 proves
	require.NoError(t, err)
	p2, err := AuthProof(key, n2, n1) // side 2 proves
	require.NoError(t, err)
	require.Len(t, p1, proofSize)

	check1, err := AuthProof(key, n1, n2) // side 2 checks side 1's proof
	require.NoError(t, err)
	assert.True(t, hmac.Equal(check1, p1))
	check2, err := AuthProof(key, n2, n1)
	require.NoError(t, err)
	assert.True(t, hmac.Equal(check2, p2))
	assert.False(t, hmac.Equal(p1, p2), "a side's own proof, sent back, does not pass")

	other, err := AuthProof([]byte("another key"), n1, n2)
	require.NoError(t, err)
	assert.False(t, hmac.Equal(other, p1), "another key gives another proof")
	n3, err := NewNonce()
	require.NoError(t, err)
	replay, err := AuthProof(key, n1, n3)
	require.NoError(t, err)
	assert.False(t, hmac.Equal(replay, p1), "a proof is bound to the verifier's nonce")
}

// TestAuthProofOrder checks that the roles follow bytes.Compare, also for
// nonces of different lengths, and that both nonces' lengths are bound.
func TestAuthProofOrder(t *testing.T) {
	key := []byte("k")
	short := bytes.Repeat([]byte{1}, NonceSize)
	long := bytes.Repeat([]byte{1}, NonceSize+1) // short is its prefix: short < long
	p, err := AuthProof(key, short, long)
	require.NoError(t, err)
	q, err := AuthProof(key, long, short)
	require.NoError(t, err)
	assert.NotEqual(t, p, q)

	// Moving a byte from one nonce to the other changes the proof, thanks
	// to the length bytes.
	a := bytes.Repeat([]byte{1}, NonceSize+1)
	b := append(bytes.Repeat([]byte{1}, NonceSize), 2)
	a2 := bytes.Repeat([]byte{1}, NonceSize)
	b2 := append(bytes.Repeat([]byte{1}, NonceSize+1), 2)
	x, err := AuthProof(key, a, b)
	require.NoError(t, err)
	y, err := AuthProof(key, a2, b2)
	require.NoError(t, err)
	assert.NotEqual(t, x, y)
}

func TestAuthProofRejects(t *testing.T) {
	n := seq(1, NonceSize)
	_, err := AuthProof([]byte("k"), n, bytes.Clone(n))
	assert.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "nonces are equal")

	for _, size := range []int{0, NonceSize - 1, maxNonceSize + 1} {
		_, err = AuthProof([]byte("k"), make([]byte, size), n)
		assert.ErrorIs(t, err, ErrMalformed, "own nonce of %d bytes", size)
		_, err = AuthProof([]byte("k"), n, make([]byte, size))
		assert.ErrorIs(t, err, ErrMalformed, "peer nonce of %d bytes", size)
	}
	_, err = AuthProof([]byte("k"), make([]byte, maxNonceSize), n)
	assert.NoError(t, err, "a 255-byte nonce")

	_, err = AuthProof(nil, n, seq(2, NonceSize))
	assert.Error(t, err, "empty key")
	assert.NotErrorIs(t, err, ErrMalformed)
}
