package realtime

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorkersBoundConcurrency(t *testing.T) {
	w := newWorkers(3)
	defer w.stop()
	release := make(chan struct{})
	var inside, peak, ran atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.do(func() {
				n := inside.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				<-release
				inside.Add(-1)
				ran.Add(1)
			})
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for inside.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d tasks started", inside.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if ran.Load() != 10 || peak.Load() != 3 {
		t.Fatalf("ran %d tasks, at most %d at once; want 10, 3", ran.Load(), peak.Load())
	}
	if r := w.running.Load(); r != 3 {
		t.Fatalf("%d workers kept, want 3", r)
	}
}

func TestWorkersAfterStop(t *testing.T) {
	w := newWorkers(2)
	w.do(func() {})
	w.stop()
	deadline := time.Now().Add(10 * time.Second)
	for w.running.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle workers did not end after stop")
		}
		time.Sleep(time.Millisecond)
	}
	ran := false
	w.do(func() { ran = true })
	if !ran {
		t.Fatal("a task after stop did not run")
	}
}
