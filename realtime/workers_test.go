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

// The poller hands messages off with submit: with every worker busy it must
// not wait (it reads every other socket), and what waits runs later.
func TestSubmitDoesNotWaitForBusyWorkers(t *testing.T) {
	w := newWorkers(2)
	defer w.stop()
	release := make(chan struct{})
	var inside, peak, ran atomic.Int32
	task := func() {
		n := inside.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		inside.Add(-1)
		ran.Add(1)
	}
	submitted := make(chan struct{})
	go func() {
		for range 7 {
			w.submit(task)
		}
		close(submitted)
	}()
	select {
	case <-submitted:
	case <-time.After(10 * time.Second):
		t.Fatal("submit waited for a busy worker")
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for ran.Load() < 7 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 7 tasks ran", ran.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if peak.Load() > 2 {
		t.Fatalf("%d tasks at once with 2 workers", peak.Load())
	}
}
