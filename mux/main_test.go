package mux_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" { // re-run as a child by startChild
		os.Exit(runChild(mode))
	}
	goleak.VerifyTestMain(m)
}
