package channel

// Waiting reports how many Sends wait for room in the send queue.
func (c *Conn) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}
