//go:build !unix

package bench

// Elsewhere (Windows) the tool's own CPU is not reported.
func selfCPU() float64 { return 0 }
