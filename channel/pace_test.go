package channel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPaceWindow drives a pace by hand: the window starts at one chunk,
// grows by what each PONG acknowledges while the round trip stays short
// and the window was full, and shrinks, never below a chunk, once the
// round trip grows by more than the queue delay.
func TestPaceWindow(t *testing.T) {
	const chunk = 1000
	p := newPace(chunk, 20*time.Millisecond)
	require.True(t, p.open())
	xid, ping := p.wrote(chunk)
	require.True(t, ping, "a full window is pinged at once")
	assert.False(t, p.open(), "one chunk in flight fills the first window")
	assert.NotZero(t, xid&pacePingBit)

	p.ack(xid)
	assert.Equal(t, int64(2*chunk), p.window, "grown by the chunk acknowledged")
	assert.True(t, p.open())

	// A PONG for no PING awaited changes nothing.
	p.ack(pacePingBit | 99)
	assert.Equal(t, int64(2*chunk), p.window)

	// Round trips that grow past the queue delay shrink the window.
	for range 50 {
		xid, _ := p.wrote(chunk)
		p.mu.Lock()
		p.pending[(xid&^pacePingBit)%paceRing].at = time.Now().Add(-time.Second)
		p.mu.Unlock()
		p.ack(xid)
	}
	assert.Equal(t, int64(chunk), p.window, "never below a chunk")

	// Bytes written without a PING get one before the writer stops.
	p2 := newPace(chunk, time.Second)
	p2.window = 100 * chunk
	_, ping = p2.wrote(10)
	assert.False(t, ping, "less than a chunk since the last PING, window far from full")
	xid, ok := p2.unpinged()
	require.True(t, ok)
	_, ok = p2.unpinged()
	assert.False(t, ok, "nothing more to acknowledge")
	p2.ack(xid)
	assert.Equal(t, p2.sent, p2.acked)
}
