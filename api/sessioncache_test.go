package api

import (
	"testing"

	"github.com/dollr/dollr"
)

func TestSessionSourcesKeepTwoGenerations(t *testing.T) {
	c := newSessionSources(3)
	for id := int64(1); id <= 3; id++ {
		c.put(7, id, dollr.SourceInvoice)
	}
	c.put(7, 4, dollr.SourceOrder) // starts a new generation; 1–3 stay findable
	if typ, ok := c.get(7, 1); !ok || typ != dollr.SourceInvoice {
		t.Fatalf("session 1 = %q, %v after one rotation", typ, ok)
	}
	if _, ok := c.get(8, 1); ok {
		t.Fatal("another merchant's session 1 was found")
	}
	// Session 1 was moved forward when read; 2 and 3 age out with the next rotation.
	c.put(7, 5, dollr.SourceOrder)
	c.put(7, 6, dollr.SourceOrder)
	if _, ok := c.get(7, 2); ok {
		t.Fatal("session 2 outlived two rotations")
	}
	for _, id := range []int64{1, 5, 6} {
		if _, ok := c.get(7, id); !ok {
			t.Fatalf("session %d forgotten", id)
		}
	}
	if n := len(c.cur) + len(c.prev); n > 2*3 {
		t.Fatalf("%d entries kept, limit 2×3", n)
	}
}
