package pool

// GoWaits returns how many calls of p.Go took a goroutine: those that had
// to wait for a connection or made another attempt.
func GoWaits(p *Pool) uint64 { return p.stats.goWaits.Load() }
