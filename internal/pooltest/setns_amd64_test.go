//go:build linux

package pooltest

const sysSetns = 308
