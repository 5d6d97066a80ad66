//go:build race

package systems_test

// raceEnabled: arpc v1.2.17 has data races of its own (Server.running and
// Client.running are read and written without synchronization), so the
// tests skip it under the race detector.
const raceEnabled = true
