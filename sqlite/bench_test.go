package sqlite

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// benchSetup opens a database and prepares n unsaved executions, each on its
// own session, outside the timed part.
func benchSetup(b *testing.B, n int) (*DB, []*dollr.Execution) {
	b.Helper()
	db := openDB(b, filepath.Join(b.TempDir(), "bench.db"))
	m := newMerchant(b, db)
	es := make([]*dollr.Execution, n)
	for i := range es {
		es[i] = newPending(b, db, m)
	}
	return db, es
}

// lifecycle runs one collection through CreateExecution and two transitions:
// three commits, three changes.
func lifecycle(b *testing.B, db *DB, e *dollr.Execution) {
	ctx := context.Background()
	stored, _, err := db.CreateExecution(ctx, e, []dollr.Job{{Kind: "momo", RunAt: time.Now()}})
	if err != nil {
		b.Fatal(err)
	}
	for _, to := range []dollr.ExecutionStatus{dollr.StatusProcessing, dollr.StatusCompleted} {
		if stored, _, err = db.ApplyTransition(ctx, dollr.Transition{ExecutionID: stored.ID, From: stored.Status, To: to, At: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLifecycle measures write throughput: one op is a collection
// created, moved to PROCESSING and to COMPLETED (3 commits).
func BenchmarkLifecycle(b *testing.B) {
	db, es := benchSetup(b, b.N)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		lifecycle(b, db, es[i])
	}
	b.ReportMetric(float64(3*b.N)/time.Since(start).Seconds(), "changes/s")
}

// BenchmarkLifecycleParallel is BenchmarkLifecycle from concurrent callers,
// as API requests and sandbox jobs would write.
func BenchmarkLifecycleParallel(b *testing.B) {
	db, es := benchSetup(b, b.N)
	next := make(chan *dollr.Execution, len(es))
	for _, e := range es {
		next <- e
	}
	close(next)
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			lifecycle(b, db, <-next)
		}
	})
	b.ReportMetric(float64(3*b.N)/time.Since(start).Seconds(), "changes/s")
}

// latencyFollower records, for every change, how long after its transaction
// began it reached the handler: an upper bound on commit-to-delivery.
type latencyFollower struct {
	mu        sync.Mutex
	latencies []time.Duration
	got       chan uint64
}

func followLatency(b *testing.B, db *DB) *latencyFollower {
	f := &latencyFollower{got: make(chan uint64, 1<<16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	head, err := db.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(done)
		_ = db.Follow(ctx, head, func(cs []dollr.Change) error {
			now := time.Now()
			f.mu.Lock()
			for _, c := range cs {
				f.latencies = append(f.latencies, now.Sub(c.CommitTime))
			}
			f.mu.Unlock()
			for _, c := range cs {
				f.got <- c.Seq
			}
			return nil
		})
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

func (f *latencyFollower) report(b *testing.B) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.latencies) == 0 {
		return
	}
	slices.Sort(f.latencies)
	at := func(q float64) float64 {
		return float64(f.latencies[int(q*float64(len(f.latencies)-1))].Microseconds())
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(at(1), "max-µs")
}

// BenchmarkFollowDelivery measures one change at a time, as a live checkout
// sees it: commit a status change, wait until the follower has it.
func BenchmarkFollowDelivery(b *testing.B) {
	db, es := benchSetup(b, b.N)
	for i, e := range es {
		es[i] = createExecution(b, db, e)
	}
	f := followLatency(b, db)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := es[i]
		if _, _, err := db.ApplyTransition(ctx, dollr.Transition{ExecutionID: e.ID, From: e.Status, To: dollr.StatusProcessing, At: time.Now()}); err != nil {
			b.Fatal(err)
		}
		<-f.got
	}
	b.StopTimer()
	f.report(b)
}

// BenchmarkFollowThroughput commits as fast as one writer can while a
// follower receives, and reports the delivery latency distribution.
func BenchmarkFollowThroughput(b *testing.B) {
	db, es := benchSetup(b, b.N)
	f := followLatency(b, db)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, _, err := db.CreateExecution(ctx, es[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		<-f.got
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "changes/s")
	b.StopTimer()
	f.report(b)
}

// BenchmarkFollowPaced commits 1,000 status changes a second, the realtime
// target load, and reports how long each took from the start of its
// transaction to the follower (an upper bound on commit-to-delivery).
func BenchmarkFollowPaced(b *testing.B) {
	db, es := benchSetup(b, b.N)
	f := followLatency(b, db)
	ctx := context.Background()
	const interval = time.Millisecond
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if _, _, err := db.CreateExecution(ctx, es[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	for range b.N {
		<-f.got
	}
	b.StopTimer()
	f.report(b)
}

// BenchmarkPublicStatus is the realtime join's snapshot read of one payment.
func BenchmarkPublicStatus(b *testing.B) {
	db, es := benchSetup(b, 1)
	ctx := context.Background()
	stored, _, err := db.CreateExecution(ctx, es[0], nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := db.PublicStatus(ctx, stored.SessionID, stored.ReferenceID); err != nil {
			b.Fatal(err)
		}
	}
}
