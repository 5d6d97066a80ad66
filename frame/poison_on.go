//go:build muxrpc_poison

package frame

// poisonReleased is set by the muxrpc_poison build tag: released buffers
// are overwritten before they are pooled, so that any use of bytes after
// their release reads garbage and fails a test instead of passing by luck.
const poisonReleased = true
