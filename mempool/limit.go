package mempool

import (
	"math"
	"sync"
	"time"
)

// A limiter is a token bucket per submitter: each holds up to burst tokens,
// refilled at rate per second; an add takes one. A bucket that has refilled
// to burst is the same as a new one, so such buckets are pruned when the map
// grows, which bounds its size by the submitters active within burst/rate.
type limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second; <= 0: no limit
	burst   float64
	buckets map[string]*bucket
	pruneAt int
}

type bucket struct {
	tokens float64
	last   time.Time
}

const minPruneAt = 1024

func newLimiter(perMinute, burst int) *limiter {
	return &limiter{
		rate:    float64(perMinute) / 60,
		burst:   float64(burst),
		buckets: make(map[string]*bucket),
		pruneAt: minPruneAt,
	}
}

// allow takes a token from who's bucket at now. When there is none it
// returns false and how long until there will be one.
func (l *limiter) allow(who string, now time.Time) (time.Duration, bool) {
	if who == "" || l.rate <= 0 {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[who]
	if b == nil {
		if len(l.buckets) >= l.pruneAt {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[who] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		// Rounded up to the millisecond: retrying then succeeds.
		ms := math.Ceil((1 - b.tokens) / l.rate * 1000)
		return time.Duration(max(ms, 1)) * time.Millisecond, false
	}
	b.tokens--
	return 0, true
}

func (l *limiter) refill(b *bucket, now time.Time) {
	// A clock that steps back refills nothing; last stays the newest time seen.
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
}

// prune drops full buckets and sets the next pruning size to twice what is
// left, so the cost is amortized over the adds in between.
func (l *limiter) prune(now time.Time) {
	for who, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, who)
		}
	}
	l.pruneAt = max(minPruneAt, 2*len(l.buckets))
}
