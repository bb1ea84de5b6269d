//go:build race

package conformance

// raceEnabled builds the dollr binary with -race when the suite runs with it.
const raceEnabled = true
