//go:build !unix

// Package fdlimit reads the process's limit on open descriptors, which bounds
// how many sockets the server can hold and the load tool can open.
package fdlimit

// Open reports no limit off Unix (Windows has no per-process descriptor cap
// of that kind).
func Open() (limit uint64, ok bool) { return 0, false }
