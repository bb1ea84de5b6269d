//go:build race

package servetest

// raceEnabled builds dollr with -race when the tests run with it, so a race
// in the server shows up in the tests that drive it.
const raceEnabled = true
