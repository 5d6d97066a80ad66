package pooltest

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(serverEnv); addr != "" { // started again as a server
		os.Exit(runServer(addr))
	}
	goleak.VerifyTestMain(m)
}
