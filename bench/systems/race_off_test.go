//go:build !race

package systems_test

const raceEnabled = false
