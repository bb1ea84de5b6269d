package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var l Limiter
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	if ok, n := l.Allow(t0); !ok || n != 0 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.Allow(t0.Add(time.Duration(i+1) * 100 * time.Millisecond)); ok {
			t.Fatalf("occurrence %d within the second logged", i+2)
		}
	}
	if ok, n := l.Allow(t0.Add(time.Second)); !ok || n != 5 {
		t.Fatalf("a second later: %v, %d left out; want true, 5", ok, n)
	}
	if ok, n := l.Allow(t0.Add(3 * time.Second)); !ok || n != 0 {
		t.Fatalf("after a quiet spell: %v, %d", ok, n)
	}
}
