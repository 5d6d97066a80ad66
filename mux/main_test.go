package mux_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" { // re-run by TestOverAChildProcess
		os.Exit(serveStdio())
	}
	goleak.VerifyTestMain(m)
}
