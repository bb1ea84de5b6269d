package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress redraws one status line on a terminal twice a second.
type progress struct {
	w        io.Writer
	scenario string

	mu    sync.Mutex
	phase string
	line  func() string
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newProgress(w io.Writer, scenario string) *progress {
	p := &progress{w: w, scenario: scenario, quit: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

// set switches to a new phase with its own status function.
func (p *progress) set(phase string, line func() string) {
	p.mu.Lock()
	p.phase, p.line = phase, line
	p.mu.Unlock()
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			p.draw()
			fmt.Fprintln(p.w)
			return
		case <-t.C:
			p.draw()
		}
	}
}

func (p *progress) draw() {
	p.mu.Lock()
	phase, line := p.phase, p.line
	p.mu.Unlock()
	s := ""
	if line != nil {
		s = line()
	}
	// \r and erase-line keep one line however long the previous one was.
	fmt.Fprintf(p.w, "\r\x1b[K%s: %s %s", p.scenario, phase, s)
}

func (p *progress) stop() {
	p.once.Do(func() {
		if p.w != nil {
			close(p.quit)
		}
	})
	<-p.done
}
