package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vcsledger/vcsledger/ledger"
)

// The client's state lives under $VCSVERIFY_HOME (default the user's config
// directory + /vcsverify):
//
//	chains/<chain id>/genesis.txt    the pinned genesis of each chain seen
//	chains/<chain id>/checkpoint     the newest checkpoint verified (header + certificate text)
//	nodes.json                       which chain each node URL serves
//
// Updates are written to a temporary file and renamed into place under an
// exclusive lock on DIR/.lock, so concurrent CI jobs sharing the directory
// never lose an update or read a half-written file.
type state struct {
	dir string
}

func openState() (*state, error) {
	dir := os.Getenv("VCSVERIFY_HOME")
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("no VCSVERIFY_HOME and no user config directory: %w", err)
		}
		dir = filepath.Join(base, "vcsverify")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &state{dir: dir}, nil
}

// locked runs fn holding the state directory's exclusive lock.
func (s *state) locked(fn func() error) error {
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", s.dir, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// writeAtomic replaces path with data (temp file, fsync, rename).
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (s *state) chainDir(chain string) (string, error) {
	if err := ledger.CheckChainID(chain); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, "chains", chain), nil
}

// pinGenesis checks g against the pinned genesis of its chain, pinning it on
// first contact. A different genesis for a pinned chain is a security error.
func (s *state) pinGenesis(g *ledger.Genesis, nodeURL string) error {
	dir, err := s.chainDir(g.Chain)
	if err != nil {
		return err
	}
	return s.locked(func() error {
		path := filepath.Join(dir, "genesis.txt")
		old, err := os.ReadFile(path)
		switch {
		case err == nil:
			if !bytes.Equal(old, g.Format()) {
				pinned, perr := ledger.ParseGenesis(old)
				ph := "unreadable"
				if perr == nil {
					ph = pinned.Hash().String()
				}
				return securityErrorf("node %s serves chain %q with genesis %s, but %s pinned genesis %s\n"+
					"a changed genesis means a different validator set: this is not the chain you trusted", nodeURL, g.Chain, g.Hash(), path, ph)
			}
		case errors.Is(err, os.ErrNotExist):
			if err := writeAtomic(path, g.Format()); err != nil {
				return err
			}
		default:
			return err
		}
		return s.pinNode(nodeURL, g.Chain)
	})
}

// pinNode remembers which chain a node serves; a node that switches chains
// is a security error. Called with the lock held.
func (s *state) pinNode(nodeURL, chain string) error {
	path := filepath.Join(s.dir, "nodes.json")
	nodes := map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &nodes); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	switch c, ok := nodes[nodeURL]; {
	case ok && c != chain:
		return securityErrorf("node %s used to serve chain %q and now serves %q (edit %s if this is intended)", nodeURL, c, chain, path)
	case ok:
		return nil
	}
	nodes[nodeURL] = chain
	b, _ := json.MarshalIndent(nodes, "", "  ")
	return writeAtomic(path, append(b, '\n'))
}

// pinnedGenesis returns the genesis pinned for chain, if any.
func (s *state) pinnedGenesis(chain string) (*ledger.Genesis, error) {
	dir, err := s.chainDir(chain)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "genesis.txt"))
	if err != nil {
		return nil, err
	}
	return ledger.ParseGenesis(b)
}

// A savedCheckpoint is the newest checkpoint the client verified for a chain.
type savedCheckpoint struct {
	Header      string `json:"header"`
	Certificate string `json:"certificate,omitempty"`
	Node        string `json:"node"`
}

func (s *state) checkpoint(chain string) (*savedCheckpoint, *ledger.Header, error) {
	dir, err := s.chainDir(chain)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
	if err != nil {
		return nil, nil, err
	}
	var cp savedCheckpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return nil, nil, fmt.Errorf("cached checkpoint: %w", err)
	}
	h, err := ledger.ParseHeader([]byte(cp.Header))
	if err != nil {
		return nil, nil, fmt.Errorf("cached checkpoint: %w", err)
	}
	return &cp, h, nil
}

// advanceCheckpoint stores cp as the newest verified checkpoint of its chain
// if it is newer than the cached one (compare-and-swap under the lock:
// check runs against the cached header read under the same lock).
func (s *state) advanceCheckpoint(chain string, h *ledger.Header, cp savedCheckpoint, check func(cached *ledger.Header) error) error {
	dir, err := s.chainDir(chain)
	if err != nil {
		return err
	}
	return s.locked(func() error {
		_, cached, err := s.checkpoint(chain)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		default:
			if err := check(cached); err != nil {
				return err
			}
			if cached.Height >= h.Height {
				return nil
			}
		}
		b, _ := json.MarshalIndent(cp, "", "  ")
		return writeAtomic(filepath.Join(dir, "checkpoint.json"), append(b, '\n'))
	})
}
