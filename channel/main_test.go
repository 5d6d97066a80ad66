package channel_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(stdioChildEnv) != "" { // re-run by TestStdio
		os.Exit(stdioChild())
	}
	goleak.VerifyTestMain(m)
}
