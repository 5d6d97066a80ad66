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
// round trip grows by more than the queue delay (each PING here is sent
// after the last shrink, so each late one shrinks it).
func TestPaceWindow(t *testing.T) {
	const chunk = 1000
	p := newPace(chunk, 20*time.Millisecond)
	require.True(t, p.open())
	xid, ping := p.wrote(chunk, false)
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
		xid, _ := p.wrote(chunk, false)
		p.mu.Lock()
		p.pending[(xid&^pacePingBit)%paceRing].at = time.Now().Add(-time.Second)
		p.mu.Unlock()
		p.ack(xid)
	}
	assert.Equal(t, int64(chunk), p.window, "never below a chunk")

	// Bytes written without a PING get one before the writer stops.
	p2 := newPace(chunk, time.Second)
	p2.window = 100 * chunk
	_, ping = p2.wrote(10, false)
	assert.False(t, ping, "less than a chunk since the last PING, window far from full")
	xid, ok := p2.unpinged(false)
	require.True(t, ok)
	_, ok = p2.unpinged(false)
	assert.False(t, ok, "nothing more to acknowledge")
	p2.ack(xid)
	assert.Equal(t, p2.sent, p2.acked)
}

// TestPaceAllowsLessDelayWhenShared checks the queue delay a round trip
// may add before the window shrinks: the configured one while only split
// messages are written, and while frames written whole share the stream,
// four shortest round trips, at least 450 µs and at most the configured.
func TestPaceAllowsLessDelayWhenShared(t *testing.T) {
	p := newPace(1000, 20*time.Millisecond)
	p.minRTT = 50 * time.Microsecond
	assert.Equal(t, 20*time.Millisecond, p.allowed(false))
	assert.Equal(t, 450*time.Microsecond, p.allowed(true), "the floor on a fast link")
	p.minRTT = time.Millisecond
	assert.Equal(t, 4*time.Millisecond, p.allowed(true), "four round trips")
	p.minRTT = 50 * time.Millisecond
	assert.Equal(t, 20*time.Millisecond, p.allowed(true), "never more than the configured delay")

	// A round trip 2 ms over the shortest: the window grows when only
	// split messages were written, and shrinks when the stream was shared.
	for _, mixed := range []bool{false, true} {
		p := newPace(1000, 20*time.Millisecond)
		p.window = 8000
		xid, _ := p.wrote(1000, mixed)
		p.ack(xid) // the shortest round trip so far
		p.minRTT = time.Microsecond
		p.sent += 7500 // the window full: the next PING is limited
		xid, _ = p.wrote(0, mixed)
		p.mu.Lock()
		p.pending[(xid&^pacePingBit)%paceRing].at = time.Now().Add(-2 * time.Millisecond)
		p.mu.Unlock()
		before := p.window
		p.ack(xid)
		if mixed {
			assert.Less(t, p.window, before, "shared: 2 ms is past the 450 µs allowed")
		} else {
			assert.Greater(t, p.window, before, "alone: 2 ms is within the 20 ms allowed")
		}
	}
}

// latePing writes n bytes and a PING as if it had been written ago before
// now, and returns its xid.
func latePing(t *testing.T, p *pace, n int, ago time.Duration) uint64 {
	t.Helper()
	p.sent += int64(n)
	p.mu.Lock()
	xid := p.ping(false)
	p.pending[(xid&^pacePingBit)%paceRing].at = time.Now().Add(-ago)
	p.mu.Unlock()
	return xid
}

// TestPaceShrinksOncePerRoundTrip checks that PONGs over the allowed
// delay shrink the window by a quarter, once for the PINGs that were in
// flight when it shrank, and again for a PING written after that.
func TestPaceShrinksOncePerRoundTrip(t *testing.T) {
	p := newPace(1000, time.Millisecond)
	p.minRTT, p.minAt = time.Microsecond, time.Now()
	p.window = 64_000
	var xids []uint64
	for range 4 { // four PINGs in flight, all late
		xids = append(xids, latePing(t, p, 8000, 10*time.Millisecond))
	}
	for _, xid := range xids {
		p.ack(xid)
	}
	assert.Equal(t, int64(48_000), p.window, "one shrink by a quarter for the PINGs in flight")

	p.ack(latePing(t, p, 8000, 10*time.Millisecond))
	assert.Equal(t, int64(36_000), p.window, "a PING written after the shrink shrinks it again")
}

// TestPaceGrowthSlowsNearTheAllowedDelay checks that a full window grows
// by all it acknowledged while the round trip is within half the allowed
// delay of the shortest, by a falling share of it beyond, and not at all
// at the allowed delay.
func TestPaceGrowthSlowsNearTheAllowedDelay(t *testing.T) {
	const allowed = 10 * time.Millisecond
	for _, c := range []struct {
		excess time.Duration
		grown  int64
	}{
		{0, 8000},
		{allowed / 2, 8000},
		{allowed * 3 / 4, 4000},
		{allowed, 0},
	} {
		p := newPace(1000, allowed)
		p.minRTT, p.minAt = time.Millisecond, time.Now()
		p.window = 8000
		p.mu.Lock()
		p.sent = 8000 // the window full
		p.adjust(c.excess, allowed, 8000, paceSlot{sent: 8000, limited: true})
		p.mu.Unlock()
		assert.Equal(t, 8000+c.grown, p.window, "round trip %v over the shortest", c.excess)
	}
}

// TestPacePiece checks how long a chunk may be while only split messages
// are written: the chunk size until the window passes eight chunks, then
// an eighth of the window, up to 16 chunks; the chunk size once stopped.
func TestPacePiece(t *testing.T) {
	p := newPace(1000, 20*time.Millisecond)
	assert.Equal(t, 1000, p.piece())
	p.window = 40_000
	assert.Equal(t, 5000, p.piece())
	p.window = 1 << 30
	assert.Equal(t, 16_000, p.piece())
	p.stop()
	assert.Equal(t, 1000, p.piece())
}
