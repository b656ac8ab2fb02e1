package vcs

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress writes a one-line, self-overwriting progress report while a pack
// is received and its deltas resolved. A nil *progress reports nothing.
type progress struct {
	w     io.Writer
	label string
	every time.Duration

	bytes   atomic.Int64
	objs    atomic.Int64
	total   atomic.Int64
	res     atomic.Int64
	resOf   atomic.Int64
	mu      sync.Mutex
	last    time.Time
	started time.Time
	printed bool
}

func newProgress(w io.Writer, label string) *progress {
	if w == nil {
		return nil
	}
	// The first line appears after a second: quick fetches print nothing.
	now := time.Now()
	return &progress{w: w, label: label, every: 200 * time.Millisecond, started: now, last: now.Add(800 * time.Millisecond)}
}

func (p *progress) received(n int64) {
	if p == nil {
		return
	}
	p.bytes.Store(n)
	p.maybe()
}

func (p *progress) objects(n int64) {
	if p != nil {
		p.total.Store(n)
	}
}

func (p *progress) object() {
	if p != nil {
		p.objs.Add(1)
		p.maybe()
	}
}

func (p *progress) deltas(n int64) {
	if p != nil {
		p.resOf.Store(n)
	}
}

func (p *progress) delta() {
	if p != nil {
		p.res.Add(1)
		p.maybe()
	}
}

func (p *progress) maybe() {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.print()
}

func (p *progress) print() {
	s := fmt.Sprintf("%s: %s, %d/%d objects", p.label, formatBytes(p.bytes.Load()), p.objs.Load(), p.total.Load())
	if n := p.resOf.Load(); n > 0 {
		s += fmt.Sprintf(", %d/%d deltas", p.res.Load(), n)
	}
	if d := time.Since(p.started).Seconds(); d > 0.5 {
		s += fmt.Sprintf(", %s/s", formatBytes(int64(float64(p.bytes.Load())/d)))
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", s)
	p.printed = true
}

// done ends the progress line, if one was printed.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed {
		p.print()
		fmt.Fprintln(p.w)
	}
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
