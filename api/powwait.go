package api

import (
	"context"
	"errors"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// A HeadNotifier is a Backend that tells when its chain's head changes, so
// that waits for a pow record's confirmations need not poll. Backends
// without it are polled every headPoll.
type HeadNotifier interface {
	// HeadChanged returns a channel closed at the next change of the head.
	HeadChanged() <-chan struct{}
}

const headPoll = 100 * time.Millisecond

// newRecord returns the API form of e on a chain whose head is at head:
// its status and, on pow chains, its confirmations.
func (s *Server) newRecord(e *ledger.Entry, head uint64) Record {
	r := NewRecord(e, s.status(e.Height, head))
	if s.g.Engine == ledger.EnginePoW && head >= e.Height {
		r.Confirmations = head - e.Height + 1
	}
	return r
}

// wantConfirmations returns how many confirmations a wait asks for: the
// query's confirmations, by default the genesis's on pow chains (final);
// 1 (committed) on poa chains, whose commits are final.
func (s *Server) wantConfirmations(q query) (uint64, error) {
	if s.g.Engine != ledger.EnginePoW {
		_, err := q.int("confirmations", 1, 1, 1<<20)
		return 1, err
	}
	n, err := q.int("confirmations", int64(s.g.Confirmations), 1, 1<<20)
	return uint64(n), err
}

// waitConfirmations waits until key's record, committed as e, has confs
// confirmations. A reorg may take it off the chain meanwhile: then it
// waits for it to commit again. When ctx ends first it returns the newest
// entry seen (nil if the record is not on the chain then).
func (s *Server) waitConfirmations(ctx context.Context, key ledger.Key, e *ledger.Entry, confs uint64) (*ledger.Entry, error) {
	hn, _ := s.b.(HeadNotifier)
	for {
		var changed <-chan struct{}
		if hn != nil {
			changed = hn.HeadChanged()
		}
		head, err := s.store.Head(ctx)
		if err != nil {
			return e, nil
		}
		cur, err := s.store.Lookup(ctx, key)
		switch {
		case err == nil:
			e = cur
			if head.Height >= e.Height && head.Height-e.Height+1 >= confs {
				return e, nil
			}
		case errors.Is(err, ledger.ErrNotFound):
			e = nil
		case ctx.Err() != nil:
			return e, nil
		default:
			return nil, err
		}
		poll := time.After(headPoll)
		if changed != nil {
			poll = nil
		}
		select {
		case <-ctx.Done():
			return e, nil
		case <-changed:
		case <-poll:
		}
	}
}
