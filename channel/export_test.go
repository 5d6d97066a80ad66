package channel

// Waiting reports how many Sends wait for room in the send queue.
func (c *Conn) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// InFlight reports the bytes of chunks the writer's pace has in flight,
// and its window; zeros without a pace.
func (c *Conn) InFlight() (inFlight, window int64) {
	p := c.pace.Load()
	if p == nil {
		return 0, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent - p.acked, p.window
}
