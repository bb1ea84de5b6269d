//go:build !unix

package bench

// Elsewhere (Windows) there is no descriptor limit to check, and the tool's
// own CPU is not reported.
func openFilesLimit() (uint64, bool) { return 0, false }

func selfCPU() float64 { return 0 }
