//go:build unix

package dirlock

import (
	"errors"
	"testing"
)

// Shared locks coexist; an exclusive one excludes both ways; a released
// lock frees the directory.
func TestLockModes(t *testing.T) {
	dir := t.TempDir()
	a, err := Shared(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Shared(dir)
	if err != nil {
		t.Fatalf("a second shared lock: %v", err)
	}
	if _, err := Exclusive(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive while shared: %v, want ErrBusy", err)
	}
	a.Release()
	if _, err := Exclusive(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive while one shared remains: %v, want ErrBusy", err)
	}
	b.Release()
	x, err := Exclusive(dir)
	if err != nil {
		t.Fatalf("exclusive once every shared lock is released: %v", err)
	}
	if _, err := Shared(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("shared while exclusive: %v, want ErrBusy", err)
	}
	if err := x.Release(); err != nil {
		t.Fatal(err)
	}
	if err := x.Release(); err != nil {
		t.Fatalf("a second Release: %v", err)
	}
	s, err := Shared(dir)
	if err != nil {
		t.Fatalf("shared after the exclusive one is released: %v", err)
	}
	s.Release()
}
