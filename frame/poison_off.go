//go:build !muxrpc_poison

package frame

// poisonReleased is off in normal builds; see poison_on.go.
const poisonReleased = false
