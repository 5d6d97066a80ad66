package frame

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// drainPool takes everything out of size class k.
func drainPool(k int) []*buffer {
	var out []*buffer
	for {
		v := bufferPools[k].Get()
		if v == nil {
			return out
		}
		out = append(out, v.(*buffer))
	}
}

func TestGetBufferSizes(t *testing.T) {
	cases := []struct{ n, minCap int }{
		{0, 64},
		{1, 64},
		{63, 64},
		{64, 64},
		{65, 128},
		{511, 512},
		{512, 512},
		{513, 1024},
		{1000, 1024},
		{1 << 20, 1 << 20},
		{1<<20 + 1, 2 << 20},
		{1 << maxBufferClass, 1 << maxBufferClass},
	}
	for _, c := range cases {
		buf := getBuffer(c.n)
		assert.Len(t, buf.b, c.n, "getBuffer(%d)", c.n)
		assert.GreaterOrEqual(t, cap(buf.b), c.minCap, "getBuffer(%d)", c.n)
		putBuffer(buf)
	}
}

// TestBufferClasses puts buffers of awkward capacities (as EncodePayload's
// appends leave them) and checks that every buffer handed out is big
// enough for what was asked.
func TestBufferClasses(t *testing.T) {
	for _, c := range []int{64, 100, 512, 600, 1023, 1024, 1500, 4096, 5000} {
		putBuffer(&buffer{b: make([]byte, 3, c)})
	}
	for n := 0; n <= 6000; n += 37 {
		buf := getBuffer(n)
		require.Len(t, buf.b, n)
		require.GreaterOrEqual(t, cap(buf.b), n)
		putBuffer(buf)
	}
}

func TestPutBufferClass(t *testing.T) {
	// A collection empties sync.Pools, and the large buffers below may set
	// one off between a put and the drain that looks for it.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, c := range []struct{ cap, class int }{
		{64, 6}, {127, 6}, {512, 9}, {1023, 9}, {1024, 10}, {1 << 24, 24}, {1<<25 - 1, 24},
	} {
		drainPool(c.class)
		buf := &buffer{b: make([]byte, 5, c.cap)}
		putBuffer(buf)
		assert.Empty(t, buf.b, "a pooled buffer is emptied")
		if raceEnabled {
			continue // the race detector drops some of what is put
		}
		assert.Contains(t, drainPool(c.class), buf, "capacity %d goes to class %d", c.cap, c.class)
	}
}

func TestBufferNotPooled(t *testing.T) {
	small := &buffer{b: make([]byte, 10, 63)}
	putBuffer(small)
	assert.Len(t, small.b, 10, "a buffer below the smallest class is left alone")

	huge := &buffer{b: make([]byte, 10, 1<<(maxBufferClass+1))}
	putBuffer(huge)
	assert.Len(t, huge.b, 10, "a buffer above the largest class is left alone")

	for k := minBufferClass; k <= maxBufferClass; k++ {
		for _, b := range drainPool(k) {
			assert.NotSame(t, huge, b)
			assert.NotSame(t, small, b)
		}
	}
}

// A buffer asked for above the largest class is allocated to size; its
// capacity still puts it in the largest class, whose buffers are at least
// that class's size.
func TestGetBufferOversize(t *testing.T) {
	n := 1<<maxBufferClass + 1
	buf := getBuffer(n)
	assert.Len(t, buf.b, n)
	assert.Equal(t, n, cap(buf.b))
	putBuffer(buf)
	drainPool(maxBufferClass)
}
