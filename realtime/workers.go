package realtime

import (
	"sync"
	"sync/atomic"
)

// workers run the messages a reader hands off (joins, leaves, broadcasts) on
// a few long-lived goroutines. A join goes deep (JSON, policy, filters, the
// snapshot read through the database driver); on a fresh goroutine each join
// grew a small stack several times over (runtime.newstack was ~12 µs per
// join in a profile of 9,000 joins), and a reader that every idle connection
// parks must not keep such a stack either. At most maxWorkers run at once;
// further messages wait for one, which also bounds concurrent snapshot reads.
type workers struct {
	tasks    chan func() // unbuffered: taken only by an idle worker
	backlog  chan func() // waits while every worker is busy
	quit     chan struct{}
	stopOnce sync.Once
	running  atomic.Int32
	max      int32
}

const maxWorkers = 64

// maxBacklog bounds the messages waiting for a busy worker; past it the
// poller itself waits, which stops reading until the workers catch up.
const maxBacklog = 4096

func newWorkers(max int32) *workers {
	return &workers{tasks: make(chan func()), backlog: make(chan func(), maxBacklog), quit: make(chan struct{}), max: max}
}

// do runs f on a worker and returns when f has returned. It runs on the
// reader goroutine that every idle socket parks, so it stays shallow: a
// blocking select here grew every reader's stack to 4 KiB (2 KiB more server
// memory per idle connection); the rare paths live in hand.
func (w *workers) do(f func()) {
	done := make(chan struct{})
	task := func() {
		defer close(done)
		f()
	}
	select {
	case w.tasks <- task: // an idle worker took it
	default:
		w.hand(task)
	}
	<-done
}

// submit runs f on a worker without waiting for it to finish; when every
// worker is busy f waits in the backlog, so the poller goes on reading other
// sockets (a slow database holding every worker must not stop heartbeats).
func (w *workers) submit(f func()) {
	select {
	case w.tasks <- f:
	default:
		w.hand(f)
	}
}

// hand starts a worker for task, or when all are busy puts it in the
// backlog; after stop it runs task itself.
//
//go:noinline
func (w *workers) hand(task func()) {
	if w.running.Add(1) <= w.max {
		go w.loop(task)
		return
	}
	w.running.Add(-1)
	select {
	case w.backlog <- task:
	case <-w.quit:
		task() // the server has closed: nothing is left to share workers with
	}
}

// loop runs tasks until the server closes: the workers are few, and keeping
// them keeps their grown stacks.
func (w *workers) loop(task func()) {
	defer w.running.Add(-1)
	for {
		task()
		select {
		case task = <-w.tasks:
		case task = <-w.backlog:
		case <-w.quit:
			return
		}
	}
}

// stop ends the idle workers once the server's connections are gone.
func (w *workers) stop() { w.stopOnce.Do(func() { close(w.quit) }) }
