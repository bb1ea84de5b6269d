package realtime

import "testing"

func TestIndexAddRemove(t *testing.T) {
	tb := newTable(itemsTable)
	mk := func(filter string) *sub {
		raws, err := parseFilter(filter)
		if err != nil {
			t.Fatal(err)
		}
		conds, err := compileConditions(tb, raws)
		if err != nil {
			t.Fatal(err)
		}
		s := &sub{table: tb, events: evAll, conds: conds}
		s.chooseKey()
		return s
	}
	eq, in, gt, neq := mk("name=like.x%,id=eq.1"), mk("id=in.(1,2,2)"), mk("id=gt.0"), mk("id=not.eq.1")
	if eq.keyCol != 0 || len(eq.keys) != 1 || len(in.keys) != 2 || gt.keyCol != -1 || neq.keyCol != -1 {
		t.Fatalf("keys: eq %d %v, in %v, gt %d, neq %d", eq.keyCol, eq.keys, in.keys, gt.keyCol, neq.keyCol)
	}
	ix := newIndex()
	ix.swap(nil, []*sub{eq, in, gt, neq})
	candidates := func(id int64) map[*sub]bool {
		out := map[*sub]bool{}
		var rv rowView
		rv.reset(tb, map[string]any{"id": id})
		if ti := ix.tables[tb.id]; ti != nil {
			ti.candidates(&rv, func(s *sub) { out[s] = true })
		}
		return out
	}
	if c := candidates(1); !c[eq] || !c[in] || !c[gt] || !c[neq] || len(c) != 4 {
		t.Errorf("id 1: %v", c)
	}
	if c := candidates(2); c[eq] || !c[in] || len(c) != 3 {
		t.Errorf("id 2: %v", c)
	}
	ix.swap([]*sub{in, in, eq}, nil) // removing twice is harmless
	if c := candidates(2); c[in] || len(c) != 2 {
		t.Errorf("after removal: %v", c)
	}
	ix.swap([]*sub{gt, neq}, nil)
	if len(ix.tables) != 0 {
		t.Errorf("empty index keeps %v", ix.tables)
	}
}
