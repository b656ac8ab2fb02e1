package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vcsledger/vcsledger/ledger"
)

const keyMagic = "vcsledger-node-key/1"

// A key file holds an ed25519 seed:
//
//	vcsledger-node-key/1
//	seed <64 hex digits>
//	public <64 hex digits>
//
// The public line is a convenience for operators and is checked on load.
func formatKey(priv ed25519.PrivateKey) []byte {
	var pub ledger.PublicKey
	copy(pub[:], priv.Public().(ed25519.PublicKey))
	return []byte(keyMagic + "\nseed " + hex.EncodeToString(priv.Seed()) + "\npublic " + pub.String() + "\n")
}

func parseKey(b []byte) (ed25519.PrivateKey, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[0] != keyMagic || !strings.HasPrefix(lines[1], "seed ") || !strings.HasPrefix(lines[2], "public ") {
		return nil, errors.New("not a " + keyMagic + " file (want three lines: magic, seed, public)")
	}
	seed, err := hex.DecodeString(strings.TrimPrefix(lines[1], "seed "))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("seed is not 64 hex digits")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub, err := ledger.ParsePublicKey(strings.TrimPrefix(lines[2], "public "))
	if err != nil {
		return nil, err
	}
	if string(pub[:]) != string(priv.Public().(ed25519.PublicKey)) {
		return nil, errors.New("public key does not match the seed")
	}
	return priv, nil
}

func readKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// writeKey creates a new key file; it never overwrites one.
func writeKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeFileNew(path, formatKey(priv), 0o600); err != nil {
		return nil, err
	}
	return priv, nil
}

func publicOf(priv ed25519.PrivateKey) ledger.PublicKey {
	var pub ledger.PublicKey
	copy(pub[:], priv.Public().(ed25519.PublicKey))
	return pub
}

// writeFileNew writes data to a new file at path (refusing to replace one),
// fsyncing it, so a crash never leaves a half-written key or genesis.
func writeFileNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
