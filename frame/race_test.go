//go:build race

package frame

// raceEnabled is true when the race detector is on, which changes how
// sync.Pool behaves and so how much the codec allocates.
const raceEnabled = true
