package api_test

import (
	"os"
	"testing"

	"github.com/dollr/dollr/pgtest"
)

// TestMain shares one PostgreSQL cluster among the package's tests; each
// PostgreSQL subtest gets a fresh database in it.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
