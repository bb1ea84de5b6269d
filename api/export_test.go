package api

import "time"

// FakeClock is the hand-moved clock of the rate-limit tests, for the
// package's external tests.
type FakeClock = fakeClock

func NewFakeClock(start time.Time) *FakeClock { return newFakeClock(start) }
