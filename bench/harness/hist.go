package harness

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a fixed log-linear histogram of durations in nanoseconds,
// safe for concurrent recording: values below 32 ns have a bucket each, and
// every power of two above is split into 32 buckets, so a reported value is
// within about 3% of the recorded one. Recording is one atomic add and
// never allocates.
type histogram struct {
	counts [histBuckets]atomic.Uint64
}

const (
	histSub     = 32 // buckets per power of two
	histSubBits = 5
	histBuckets = (64 - histSubBits + 1) * histSub
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - 1 // >= histSubBits
	sub := (v >> (e - histSubBits)) & (histSub - 1)
	return (e-histSubBits+1)*histSub + int(sub)
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histSub + histSubBits - 1
	sub := uint64(i % histSub)
	lo := (histSub + sub) << (e - histSubBits)
	width := uint64(1) << (e - histSubBits)
	return lo + width/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))].Add(1)
}

// quantiles returns the values at each of qs (0 < q ≤ 1) and the number of
// values recorded.
func (h *histogram) quantiles(qs ...float64) ([]time.Duration, uint64) {
	var snap [histBuckets]uint64
	var total uint64
	for i := range h.counts {
		snap[i] = h.counts[i].Load()
		total += snap[i]
	}
	out := make([]time.Duration, len(qs))
	if total == 0 {
		return out, 0
	}
	for j, q := range qs {
		rank := uint64(q*float64(total) + 0.5)
		if rank < 1 {
			rank = 1
		}
		if rank > total {
			rank = total
		}
		var seen uint64
		for i, c := range snap {
			seen += c
			if seen >= rank {
				out[j] = time.Duration(histValue(i))
				break
			}
		}
	}
	return out, total
}
