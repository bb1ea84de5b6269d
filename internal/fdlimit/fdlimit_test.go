package fdlimit

import (
	"runtime"
	"testing"
)

func TestOpen(t *testing.T) {
	limit, ok := Open()
	if runtime.GOOS == "windows" {
		if ok {
			t.Fatalf("Open() = %d, true on Windows", limit)
		}
		return
	}
	// A process that runs tests has stdin, stdout and stderr at least.
	if !ok || limit < 3 {
		t.Fatalf("Open() = %d, %v", limit, ok)
	}
}
