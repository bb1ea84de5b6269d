package realtime

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dollr/dollr"
)

// Change-type bits a subscription listens to.
const (
	evInsert uint8 = 1 << iota
	evUpdate
	evDelete
	evAll = evInsert | evUpdate | evDelete
)

func eventBit(t dollr.ChangeType) uint8 {
	switch t {
	case dollr.ChangeInsert:
		return evInsert
	case dollr.ChangeUpdate:
		return evUpdate
	case dollr.ChangeDelete:
		return evDelete
	}
	return 0
}

// sub is one postgres_changes binding of a channel on one table: what the index holds.
type sub struct {
	ch     *channel
	id     int64 // the binding's id in the join reply
	table  *table
	events uint8
	conds  []condition // the grant's conditions first, then the client's filter
	// snapSeq: live changes at or below it are already covered by the snapshot
	// this subscription received, so they are not delivered again.
	snapSeq atomic.Uint64

	keyCol int // column the index files it under; -1: scanned for every change
	keys   []ikey
}

// matches reports whether a change of type typ whose tested row is rv passes
// the subscription's event filter and every condition.
func (s *sub) matches(typ dollr.ChangeType, rv *rowView) bool {
	if s.events&eventBit(typ) == 0 {
		return false
	}
	for i := range s.conds {
		c := &s.conds[i]
		v, null, present := rv.get(c.col)
		if !present { // fail closed: a condition on a column the row lacks (a DELETE's non-key column) never passes
			return false
		}
		if c.eval(v, null) != tTrue {
			return false
		}
	}
	return true
}

// chooseKey picks the first equality condition as the subscription's index key.
func (s *sub) chooseKey() {
	s.keyCol = -1
	for pass := 0; pass < 2; pass++ { // prefer eq, then in
		for i := range s.conds {
			c := &s.conds[i]
			if (pass == 0) != (c.op == opEq) {
				continue
			}
			if keys, ok := c.indexKeys(); ok {
				s.keyCol, s.keys = c.col, keys
				return
			}
		}
	}
}

// index finds the subscriptions a change may match in O(matching): per table,
// subscriptions with an equality condition are filed under (column, value);
// the rest are scanned.
type index struct {
	mu     sync.RWMutex
	tables map[string]*tableIndex
}

type tableIndex struct {
	byCol map[int]map[ikey][]*sub
	cols  []int // keys of byCol, for iteration without map order
	scan  []*sub
	nsubs int
}

func newIndex() *index { return &index{tables: make(map[string]*tableIndex)} }

// swap removes old and adds new in one step, so no change falls between them.
func (ix *index) swap(old, add []*sub) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, s := range old {
		ix.remove(s)
	}
	for _, s := range add {
		ix.add(s)
	}
}

func (ix *index) add(s *sub) {
	ti := ix.tables[s.table.id]
	if ti == nil {
		ti = &tableIndex{byCol: make(map[int]map[ikey][]*sub)}
		ix.tables[s.table.id] = ti
	}
	ti.nsubs++
	if s.keyCol < 0 {
		ti.scan = append(ti.scan, s)
		return
	}
	m := ti.byCol[s.keyCol]
	if m == nil {
		m = make(map[ikey][]*sub)
		ti.byCol[s.keyCol] = m
		ti.cols = append(ti.cols, s.keyCol)
	}
	for _, k := range s.keys {
		m[k] = append(m[k], s)
	}
}

func (ix *index) remove(s *sub) {
	ti := ix.tables[s.table.id]
	if ti == nil {
		return
	}
	found := false
	if s.keyCol < 0 {
		ti.scan, found = removeSub(ti.scan, s)
	} else if m := ti.byCol[s.keyCol]; m != nil {
		for _, k := range s.keys {
			l, ok := removeSub(m[k], s)
			found = found || ok
			if len(l) == 0 {
				delete(m, k)
			} else {
				m[k] = l
			}
		}
		if len(m) == 0 {
			delete(ti.byCol, s.keyCol)
			ti.cols = slices.DeleteFunc(ti.cols, func(c int) bool { return c == s.keyCol })
		}
	}
	if found {
		ti.nsubs--
	}
	if ti.nsubs == 0 {
		delete(ix.tables, s.table.id)
	}
}

func removeSub(l []*sub, s *sub) ([]*sub, bool) {
	for i, x := range l {
		if x == s {
			last := len(l) - 1
			l[i] = l[last]
			l[last] = nil
			l = l[:last]
			if len(l) == 0 {
				return nil, true
			}
			return l, true
		}
	}
	return l, false
}

// candidates calls fn for every subscription that may match a change whose
// tested row is rv. The caller holds ix.mu for reading.
func (ti *tableIndex) candidates(rv *rowView, fn func(*sub)) {
	for _, col := range ti.cols {
		v, null, present := rv.get(col)
		if !present || null {
			continue
		}
		for _, s := range ti.byCol[col][v.key(rv.t.cols[col].kind)] {
			fn(s)
		}
	}
	for _, s := range ti.scan {
		fn(s)
	}
}

// rowView casts a row's values to their column kinds once per change, however
// many subscriptions test them.
type rowView struct {
	t     *table
	row   map[string]any
	stamp []uint32
	cur   uint32
	vals  []value
	nulls []bool
	pres  []bool
}

func (rv *rowView) reset(t *table, row map[string]any) {
	rv.t, rv.row = t, row
	if n := len(t.cols); cap(rv.stamp) < n {
		rv.stamp = make([]uint32, n)
		rv.vals = make([]value, n)
		rv.nulls = make([]bool, n)
		rv.pres = make([]bool, n)
	} else {
		rv.stamp, rv.vals, rv.nulls, rv.pres = rv.stamp[:n], rv.vals[:n], rv.nulls[:n], rv.pres[:n]
	}
	rv.cur++
	if rv.cur == 0 { // wrapped: clear the stamps so none looks current
		clear(rv.stamp)
		rv.cur = 1
	}
}

func (rv *rowView) get(col int) (value, bool, bool) {
	if rv.stamp[col] != rv.cur {
		rv.stamp[col] = rv.cur
		raw, present := rv.row[rv.t.cols[col].name]
		rv.pres[col] = present
		v, ok := rowValue(rv.t.cols[col].kind, raw)
		rv.vals[col], rv.nulls[col] = v, !ok
	}
	return rv.vals[col], rv.nulls[col], rv.pres[col]
}

// testedRow is the row a change's filters test: the new row for INSERT and
// UPDATE, the old identity for DELETE (realtime-protocol.md §8).
func testedRow(c *dollr.Change) map[string]any {
	if c.Type == dollr.ChangeDelete {
		return c.OldRecord
	}
	return c.Record
}
