package frame

import "io"

// Read buffer sizes: an idle stream waits for its next bytes with a small
// buffer that lives in the reader; once a read fills it, reads go to a
// pooled large buffer, so that a busy stream takes many frames per read,
// and the large buffer goes back to the pool when a read brings in little.
const (
	smallReadSize = 1 << 10
	largeReadSize = 64 << 10
)

// streamReader is a buffered reader whose buffer grows while data flows
// and shrinks when it stops.
type streamReader struct {
	r      io.Reader
	small  [smallReadSize]byte
	large  *buffer // pooled; nil while the stream is quiet
	shrink bool    // give large back once what it holds is read
	buf    []byte  // small[:] or large.b, holding buf[start:end] unread
	start  int
	end    int
	err    error // from the last read, returned once the buffer is empty
}

func newStreamReader(r io.Reader) *streamReader {
	s := &streamReader{r: r}
	s.buf = s.small[:]
	return s
}

// Read reads what is buffered, or reads from the stream: straight into p
// when p is at least as large as the buffer, else into the buffer.
func (s *streamReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.start == s.end {
		if s.err != nil {
			err := s.err
			s.err = nil
			return 0, err
		}
		s.resize()
		if len(p) >= len(s.buf) {
			return s.r.Read(p)
		}
		n, err := s.r.Read(s.buf)
		s.start, s.end, s.err = 0, n, err
		s.adapt(n)
		if n == 0 {
			s.err = nil
			return 0, err
		}
	}
	n := copy(p, s.buf[s.start:s.end])
	s.start += n
	return n, nil
}

// buffered is the number of bytes read from the stream and not yet from s.
func (s *streamReader) buffered() int { return s.end - s.start }

// resize switches buffers while the buffer is empty, as adapt decided.
func (s *streamReader) resize() {
	if s.shrink && s.large != nil {
		putBuffer(s.large)
		s.large, s.shrink = nil, false
		s.buf = s.small[:]
	}
}

// adapt decides, after a read of n bytes, which buffer the next read uses:
// the large one once a read fills the small one, the small one again once
// a read into the large one brings less than the small one holds.
func (s *streamReader) adapt(n int) {
	switch {
	case s.large == nil && n == len(s.small):
		s.large = getBuffer(largeReadSize)
		s.large.b = s.large.b[:cap(s.large.b)]
		// The small buffer still holds unread bytes: move them over.
		s.end = copy(s.large.b, s.buf[s.start:s.end])
		s.start = 0
		s.buf = s.large.b
	case s.large != nil && n < len(s.small):
		s.shrink = true
	}
}
