//go:build !linux || (!amd64 && !arm64)

package pooltest

const sysSetns = -1 // setns(2) not wired up here: the tests skip
