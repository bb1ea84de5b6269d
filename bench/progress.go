package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress reports a run's phase and counters. On a terminal it redraws one
// status line twice a second. Anywhere else (a file, a pipe, a CI log) it
// writes plain lines with no terminal escape codes: one when the phase
// changes, then one every plainEvery while the phase lasts, and the last
// state when the run ends.
type progress struct {
	w        io.Writer
	scenario string
	tty      bool
	tick     time.Duration // how often the line is refreshed
	every    time.Duration // plain lines: the pause between lines of one phase

	mu    sync.Mutex
	phase string
	line  func() string
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once

	// Plain lines only, on the loop's goroutine.
	lastPhase string
	lastText  string
	lastAt    time.Time
}

const plainEvery = 5 * time.Second

func newProgress(w io.Writer, scenario string) *progress {
	return startProgress(w, scenario, isTerminal(w), 500*time.Millisecond, plainEvery)
}

func startProgress(w io.Writer, scenario string, tty bool, tick, every time.Duration) *progress {
	p := &progress{w: w, scenario: scenario, tty: tty, tick: tick, every: every,
		quit: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

// isTerminal reports whether w is a character device (a terminal), the same
// test dollr watch uses for its spinner.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// set switches to a new phase with its own status function.
func (p *progress) set(phase string, line func() string) {
	p.mu.Lock()
	p.phase, p.line = phase, line
	p.mu.Unlock()
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(p.tick)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			if p.tty {
				p.draw()
				fmt.Fprintln(p.w)
			} else {
				p.plain(true)
			}
			return
		case <-t.C:
			if p.tty {
				p.draw()
			} else {
				p.plain(false)
			}
		}
	}
}

// current returns the phase and its status text.
func (p *progress) current() (phase, text string) {
	p.mu.Lock()
	phase, line := p.phase, p.line
	p.mu.Unlock()
	if line != nil {
		text = line()
	}
	return phase, text
}

func (p *progress) format(phase, text string) string {
	if text == "" {
		return p.scenario + ": " + phase
	}
	return p.scenario + ": " + phase + " " + text
}

func (p *progress) draw() {
	phase, text := p.current()
	// \r and erase-line keep one line however long the previous one was.
	fmt.Fprintf(p.w, "\r\x1b[K%s", p.format(phase, text))
}

// plain writes a whole line when the phase changed, when every has passed
// since the last line, or at the end (final) if anything changed since.
func (p *progress) plain(final bool) {
	phase, text := p.current()
	if phase == "" {
		return
	}
	now := time.Now()
	due := phase != p.lastPhase || now.Sub(p.lastAt) >= p.every || final
	if !due || (phase == p.lastPhase && text == p.lastText) {
		return
	}
	fmt.Fprintln(p.w, p.format(phase, text))
	p.lastPhase, p.lastText, p.lastAt = phase, text, now
}

func (p *progress) stop() {
	p.once.Do(func() {
		if p.w != nil {
			close(p.quit)
		}
	})
	<-p.done
}
