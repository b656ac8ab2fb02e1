package main

import (
	"os"
	"testing"
)

// execAsLedgerd, set in a child's environment, makes the test binary run
// as ledgerd with the child's arguments: tests start real ledgerd processes
// (and kill them) without building a separate binary.
const execAsLedgerd = "LEDGERD_TEST_EXEC_AS_LEDGERD"

func TestMain(m *testing.M) {
	if os.Getenv(execAsLedgerd) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
