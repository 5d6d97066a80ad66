package mux

// Streams reports how many streams the Mux still routes items to.
func (m *Mux) Streams() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.streams)
}

// CallDone is closed once the stream's call has ended, however it ended.
func (s *Stream) CallDone() <-chan struct{} { return s.call.done }
