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

// FuzzAuthProof checks AuthProof against refAuthProof, a plain reading of
// PROTOCOL.md section 18, on any key and nonces: both fail, or both give
// the same proof; and the two sides' proofs of one exchange differ.
func FuzzAuthProof(f *testing.F) {
	f.Add(goldenKey, goldenNonceA, goldenNonceB)
	f.Add(goldenKey, goldenNonceB, goldenNonceA)
	f.Add(goldenKey, goldenNonceA, goldenNonceA)
	f.Add([]byte{}, goldenNonceA, goldenNonceB)
	f.Add(goldenKey, seq(0, maxNonceSize), append(seq(0, maxNonceSize-1), 0xff))
	f.Add(goldenKey, seq(0, NonceSize-1), goldenNonceB)
	f.Add(bytes.Repeat([]byte("k"), 100), seq(1, NonceSize), seq(1, NonceSize+1))
	f.Fuzz(func(t *testing.T, key, own, peer []byte) {
		got, err := AuthProof(key, own, peer)
		want, ok := refAuthProof(key, own, peer)
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
		other, err := AuthProof(key, peer, own)
		require.NoError(t, err)
		require.False(t, hmac.Equal(got, other), "the two sides' proofs are equal")
	})
}

// refAuthProof computes a proof as PROTOCOL.md describes it, byte by byte.
func refAuthProof(key, own, peer []byte) ([]byte, bool) {
	if len(key) == 0 || string(own) == string(peer) {
		return nil, false
	}
	for _, n := range [][]byte{own, peer} {
		if len(n) < 32 || len(n) > 255 {
			return nil, false
		}
	}
	// The smaller nonce: the first differing byte decides, and a prefix
	// is smaller than what it starts.
	ownSmaller := len(own) < len(peer)
	for i := 0; i < len(own) && i < len(peer); i++ {
		if own[i] != peer[i] {
			ownSmaller = own[i] < peer[i]
			break
		}
	}
	role, a, b := byte(0x42), peer, own
	if ownSmaller {
		role, a, b = 0x41, own, peer
	}
	msg := []byte{0x6d, 0x75, 0x78, 0x72, 0x70, 0x63, 0x20, 0x61, 0x75, 0x74, 0x68, 0x20, 0x76, 0x31, role}
	msg = append(msg, byte(len(a)))
	msg = append(msg, a...)
	msg = append(msg, byte(len(b)))
	msg = append(msg, b...)
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	return mac.Sum(nil), true
}
