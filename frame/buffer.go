package frame

import (
	"math/bits"
	"sync"
)

// Buffers are pooled in power-of-two size classes from 64 B to 16 MiB. The
// small classes matter: a parked call holds its request's payload buffer
// for as long as its handler runs.
// A buffer in class k has a capacity of at least 1<<k bytes.
const (
	minBufferClass = 6
	maxBufferClass = 24
)

type buffer struct{ b []byte }

var bufferPools [maxBufferClass + 1]sync.Pool

// getBuffer returns a buffer whose capacity is at least n and whose length
// is n.
func getBuffer(n int) *buffer {
	k := max(bits.Len(uint(n-1)), minBufferClass)
	if n <= 0 {
		k = minBufferClass
	}
	if k > maxBufferClass {
		return &buffer{b: make([]byte, n)}
	}
	if v := bufferPools[k].Get(); v != nil {
		buf := v.(*buffer)
		buf.b = buf.b[:n]
		return buf
	}
	return &buffer{b: make([]byte, n, 1<<k)}
}

// putBuffer gives buf back to the class its capacity fills.
func putBuffer(buf *buffer) {
	k := bits.Len(uint(cap(buf.b))) - 1
	if k < minBufferClass || k > maxBufferClass {
		return
	}
	if poisonReleased {
		b := buf.b[:cap(buf.b)]
		for i := range b {
			b[i] = 0xdd
		}
	}
	buf.b = buf.b[:0]
	bufferPools[k].Put(buf)
}
