package vcs

import (
	"bytes"
	"encoding/hex"

	"github.com/go-git/go-git/v5/plumbing"
)

// parseCommitTree returns the tree id of a commit object: its first line
// must be "tree <hex id>".
func parseCommitTree(data []byte) (plumbing.Hash, error) {
	line, _, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return plumbing.ZeroHash, hostilef("malformed commit: no header")
	}
	v, ok := bytes.CutPrefix(line, []byte("tree "))
	if !ok {
		return plumbing.ZeroHash, hostilef("malformed commit: first line is not a tree")
	}
	id, ok := parseHex(v)
	if !ok {
		return plumbing.ZeroHash, hostilef("malformed commit: bad tree id")
	}
	return id, nil
}

// parseTagTarget returns the object and the type an annotated tag object
// names, from its "object" and "type" header lines.
func parseTagTarget(data []byte) (plumbing.Hash, plumbing.ObjectType, error) {
	var (
		id              plumbing.Hash
		typ             plumbing.ObjectType
		haveID, haveTyp bool
	)
	for len(data) > 0 {
		var line []byte
		var ok bool
		line, data, ok = bytes.Cut(data, []byte{'\n'})
		if !ok || len(line) == 0 {
			break // end of the header (or of a header-only object)
		}
		switch {
		case !haveID && bytes.HasPrefix(line, []byte("object ")):
			if id, haveID = parseHex(line[len("object "):]); !haveID {
				return id, typ, hostilef("malformed tag: bad object id")
			}
		case !haveTyp && bytes.HasPrefix(line, []byte("type ")):
			t, err := plumbing.ParseObjectType(string(line[len("type "):]))
			if err != nil || !t.Valid() || t == plumbing.OFSDeltaObject || t == plumbing.REFDeltaObject {
				return id, typ, hostilef("malformed tag: bad type")
			}
			typ, haveTyp = t, true
		}
	}
	if !haveID || !haveTyp {
		return id, typ, hostilef("malformed tag: no object or type line")
	}
	return id, typ, nil
}

// parseHex parses a lowercase 40-digit hex object id.
func parseHex(b []byte) (plumbing.Hash, bool) {
	var id plumbing.Hash
	if len(b) != 40 {
		return id, false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, false
		}
	}
	if _, err := hex.Decode(id[:], b); err != nil {
		return id, false
	}
	return id, true
}
