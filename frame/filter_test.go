package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// headerOnly returns a frame's 14-byte header and fails the test if
// anything reads past it.
type headerOnly struct {
	t    testing.TB
	hdr  []byte
	done bool
}

func (r *headerOnly) Read(p []byte) (int, error) {
	if r.done {
		r.t.Error("the reader read past the header")
		return 0, errors.New("read past the header")
	}
	r.done = true
	return copy(p, r.hdr), nil
}

var errRefused = errors.New("type refused")

// TestTypeFilterBeforeBody refuses a RESPONSE that claims 16 MiB: the
// reader reads its 14-byte header, asks the filter, and neither reads nor
// allocates its body.
func TestTypeFilterBeforeBody(t *testing.T) {
	hdr := append(u32(DefaultMaxFrameSize), raw(TypeResponse, 0, 1)[4:]...)
	require.Len(t, hdr, HeaderSize)
	r := Native.NewReader(&headerOnly{t: t, hdr: hdr}, 0)
	var seen []Type
	r.SetTypeFilter(func(typ Type) error {
		seen = append(seen, typ)
		return fmt.Errorf("%v: %w", typ, errRefused)
	})
	var f Frame
	var err error
	allocated := bytesAllocated(func() { err = r.ReadFrame(&f) })
	assert.ErrorIs(t, err, errRefused)
	assert.NotErrorIs(t, err, ErrMalformed)
	assert.Equal(t, []Type{TypeResponse}, seen)
	assert.Nil(t, f.Payload)
	// Far below the 16 MiB claimed; the margin absorbs the error and the
	// race detector's own allocations.
	assert.Less(t, allocated, uint64(16<<10), "bytes allocated refusing the frame")
}

// TestTypeFilterPhases runs a filter the way an authenticating side does:
// only CHALLENGE and PROOF until the peer has proven itself, then every
// type. The filter sees each frame's type once, in order, and a frame it
// accepts is read as without a filter.
func TestTypeFilterPhases(t *testing.T) {
	frames := []*Frame{
		{Type: TypeChallenge, Payload: goldenNonceC},
		{Type: TypeProof, Payload: goldenProofS},
		{Type: TypeRequest, XID: 1, Method: "m", Payload: []byte{0xc0}},
		{Type: TypePing, XID: 9},
	}
	r := Native.NewReader(bytes.NewReader(encode(t, frames...)), 0)
	var seen []Type
	authOnly := func(typ Type) error {
		seen = append(seen, typ)
		if typ != TypeChallenge && typ != TypeProof {
			return errRefused
		}
		return nil
	}
	r.SetTypeFilter(authOnly)
	for _, want := range frames[:2] {
		var got Frame
		require.NoError(t, r.ReadFrame(&got))
		assertSameFrame(t, want, &got)
		got.Release()
	}
	r.SetTypeFilter(nil)
	for _, want := range frames[2:] {
		var got Frame
		require.NoError(t, r.ReadFrame(&got))
		assertSameFrame(t, want, &got)
		got.Release()
	}
	assert.Equal(t, []Type{TypeChallenge, TypeProof}, seen)

	// A REQUEST before the PROOF is refused.
	r = Native.NewReader(bytes.NewReader(encode(t, frames[0], frames[2])), 0)
	r.SetTypeFilter(authOnly)
	var f Frame
	require.NoError(t, r.ReadFrame(&f))
	assert.Equal(t, errRefused, r.ReadFrame(&f), "the filter's error, as it is")
	assert.Nil(t, f.Payload)
}

// TestTypeFilterNotAskedAboutBadHeaders checks that a header the codec
// rejects itself fails as without a filter, which is not called.
func TestTypeFilterNotAskedAboutBadHeaders(t *testing.T) {
	for name, in := range map[string][]byte{
		"unknown type":    raw(16, 0, 1),
		"bad flags":       raw(TypePing, FlagDeadline, 1),
		"bad xid":         raw(TypeChallenge, 0, 1, goldenNonceC),
		"too large":       u32(DefaultMaxFrameSize + 1),
		"PROOF too short": raw(TypeProof, 0, 0, goldenProofS[:31]),
	} {
		r := Native.NewReader(bytes.NewReader(in), 0)
		r.SetTypeFilter(func(Type) error {
			t.Errorf("%s: the filter was called", name)
			return nil
		})
		var f Frame
		err := r.ReadFrame(&f)
		assert.True(t, isViolation(err), "%s: %v", name, err)
	}
	// The end of the stream is not a frame either.
	r := Native.NewReader(bytes.NewReader(nil), 0)
	r.SetTypeFilter(func(Type) error { t.Error("called at the end of the stream"); return nil })
	var f Frame
	assert.Equal(t, io.EOF, r.ReadFrame(&f))
}

func TestTypeFilterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers")
	}
	req := encode(t, &Frame{Type: TypeRequest, XID: 1, Method: "Arith.Add", Payload: []byte{0x92, 1, 2}})
	r := Native.NewReader(&repeatReader{b: req}, 0)
	r.SetTypeFilter(func(typ Type) error {
		if typ != TypeRequest {
			return errRefused
		}
		return nil
	})
	var f Frame
	allocs := testing.AllocsPerRun(1000, func() {
		if err := r.ReadFrame(&f); err != nil {
			t.Fatal(err)
		}
		f.Release()
	})
	assert.Zero(t, allocs, "allocations per REQUEST read through a filter")
}
