package vcs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Canonical modes of tree entries (DESIGN §2), as git canonicalises them.
const (
	modeFile    = 0o100644
	modeExec    = 0o100755
	modeSymlink = 0o120000
	modeGitlink = 0o160000
	modeTree    = 0o040000
)

// An entry is one non-directory path of a tree, with what t1 needs of it.
type entry struct {
	path   string
	mode   uint32
	id     plumbing.Hash // blob id, or the submodule's commit id
	size   int64         // blob size; 0 for submodules
	digest [32]byte      // SHA-256 of the blob, or of the commit id's hex
}

// An integrityError reports an object that is missing or does not match its
// id. Read from a fresh pack it means the server sent a bad pack; read from
// the cache it means the cache entry is damaged, and Hash fetches it again.
type integrityError struct{ msg string }

func (e *integrityError) Error() string { return e.msg }

func integrityf(format string, args ...any) error {
	return &kindError{kind: ErrHostile, err: &integrityError{fmt.Sprintf(format, args...)}}
}

// objectStore reads objects and checks them against their ids.
type objectStore struct {
	s   storer.EncodedObjectStorer
	lim Limits
}

// read returns the content of object id, which must have type want (or any
// type if want is plumbing.AnyObject), after checking that the content
// hashes to id.
func (o *objectStore) read(id plumbing.Hash, want plumbing.ObjectType) ([]byte, plumbing.ObjectType, error) {
	obj, err := o.s.EncodedObject(plumbing.AnyObject, id)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, 0, integrityf("object %s missing", id)
	}
	if err != nil {
		return nil, 0, integrityf("reading object %s: %v", id, err)
	}
	if want != plumbing.AnyObject && obj.Type() != want {
		return nil, 0, hostilef("object %s is a %s, not a %s", id, obj.Type(), want)
	}
	if obj.Size() > o.lim.MaxMemory {
		return nil, 0, limitf("%s %s is %d bytes, more than the memory limit", obj.Type(), id, obj.Size())
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, 0, integrityf("reading object %s: %v", id, err)
	}
	defer r.Close()
	data := make([]byte, 0, obj.Size())
	buf := bytes.NewBuffer(data)
	if _, err := io.Copy(buf, io.LimitReader(r, obj.Size()+1)); err != nil {
		return nil, 0, integrityf("reading object %s: %v", id, err)
	}
	data = buf.Bytes()
	if int64(len(data)) != obj.Size() || objectID(obj.Type(), data) != id {
		return nil, 0, integrityf("object %s does not match its id", id)
	}
	return data, obj.Type(), nil
}

// blobSum streams blob id and returns its SHA-256 and size, checking its id.
func (o *objectStore) blobSum(ctx context.Context, id plumbing.Hash) ([32]byte, int64, error) {
	var digest [32]byte
	obj, err := o.s.EncodedObject(plumbing.BlobObject, id)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return digest, 0, integrityf("blob %s missing", id)
	}
	if err != nil {
		return digest, 0, integrityf("reading blob %s: %v", id, err)
	}
	r, err := obj.Reader()
	if err != nil {
		return digest, 0, integrityf("reading blob %s: %v", id, err)
	}
	defer r.Close()
	sum := sha256.New()
	h := plumbing.NewHasher(plumbing.BlobObject, obj.Size())
	n, err := io.Copy(io.MultiWriter(sum, h), ctxReader{ctx, io.LimitReader(r, obj.Size()+1)})
	if err != nil {
		if ctx.Err() != nil {
			return digest, 0, ctx.Err()
		}
		return digest, 0, integrityf("reading blob %s: %v", id, err)
	}
	if n != obj.Size() || h.Sum() != id {
		return digest, 0, integrityf("blob %s does not match its id", id)
	}
	sum.Sum(digest[:0])
	return digest, n, nil
}

// ctxReader stops a long copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// parseTree calls fn for each entry of a git tree object, in stored order.
// It refuses what git fsck calls malformed: a bad mode, an empty name, a
// name with '/', ".", "..", or a truncated entry.
func parseTree(data []byte, fn func(mode uint32, name []byte, id plumbing.Hash) error) error {
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp <= 0 || sp > 7 {
			return hostilef("malformed tree: bad mode")
		}
		var mode uint32
		for _, c := range data[:sp] {
			if c < '0' || c > '7' {
				return hostilef("malformed tree: bad mode %q", data[:sp])
			}
			mode = mode<<3 | uint32(c-'0')
		}
		data = data[sp+1:]
		nul := bytes.IndexByte(data, 0)
		if nul < 0 {
			return hostilef("malformed tree: unterminated name")
		}
		name := data[:nul]
		data = data[nul+1:]
		if len(data) < 20 {
			return hostilef("malformed tree: truncated entry")
		}
		var id plumbing.Hash
		copy(id[:], data[:20])
		data = data[20:]
		switch {
		case len(name) == 0:
			return hostilef("malformed tree: empty name")
		case bytes.IndexByte(name, '/') >= 0:
			return hostilef("malformed tree: name %q contains '/'", name)
		case string(name) == "." || string(name) == "..":
			return hostilef("malformed tree: name %q", name)
		}
		if err := fn(mode, name, id); err != nil {
			return err
		}
	}
	return nil
}

// canonMode returns the canonical mode of a tree entry, as git's canon_mode
// computes it, or an error for a mode git cannot check out.
func canonMode(mode uint32) (uint32, error) {
	switch mode & 0o170000 {
	case 0o100000:
		if mode&0o100 != 0 {
			return modeExec, nil
		}
		return modeFile, nil
	case 0o120000:
		return modeSymlink, nil
	case 0o040000:
		return modeTree, nil
	case 0o160000:
		return modeGitlink, nil
	}
	return 0, hostilef("unsupported file mode %o", mode)
}

// A walker lists the entries of a tree, enforcing the limits.
type walker struct {
	ctx     context.Context
	objs    *objectStore
	sums    sumSet
	lim     Limits
	count   int
	bytes   int64
	entries []entry
	sizes   map[plumbing.Hash]int64 // blob sizes read from the store
}

// walk lists every non-directory entry below tree, with sizes, and checks
// names, paths and limits. Digests are filled in by digests.
func (w *walker) walk(tree plumbing.Hash) error {
	if err := w.tree(tree, "", 0); err != nil {
		return err
	}
	slices.SortFunc(w.entries, func(a, b entry) int { return strings.Compare(a.path, b.path) })
	for i := 1; i < len(w.entries); i++ {
		if w.entries[i].path == w.entries[i-1].path {
			return hostilef("path %q appears twice", clip(w.entries[i].path))
		}
	}
	return nil
}

func (w *walker) tree(id plumbing.Hash, prefix string, depth int) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	data, _, err := w.objs.read(id, plumbing.TreeObject)
	if err != nil {
		return err
	}
	if len(data) > 0 && depth+1 > w.lim.MaxDepth {
		return limitf("tree %q is nested deeper than %d", clip(strings.TrimSuffix(prefix, "/")), w.lim.MaxDepth)
	}
	seen := make(map[string]bool)
	type sub struct {
		id   plumbing.Hash
		path string
	}
	var subs []sub
	err = parseTree(data, func(mode uint32, name []byte, eid plumbing.Hash) error {
		p := prefix + string(name)
		if bytes.IndexByte(name, '\n') >= 0 {
			return hostilef("path %q contains a newline", clip(p))
		}
		if len(p) > w.lim.MaxPathLen {
			return limitf("path %q of %d bytes is longer than %d bytes", clip(p), len(p), w.lim.MaxPathLen)
		}
		if seen[string(name)] {
			return hostilef("path %q appears twice", clip(p))
		}
		seen[string(name)] = true
		if w.count++; w.count > w.lim.MaxFiles {
			return limitf("tree has more than %d entries", w.lim.MaxFiles)
		}
		m, err := canonMode(mode)
		if err != nil {
			return fmt.Errorf("%w (path %q)", err, clip(p))
		}
		switch m {
		case modeTree:
			subs = append(subs, sub{eid, p + "/"})
			return nil
		case modeGitlink:
			w.entries = append(w.entries, entry{path: p, mode: m, id: eid, digest: sha256.Sum256([]byte(eid.String()))})
			return nil
		}
		e := entry{path: p, mode: m, id: eid}
		if d, n, ok := w.sums.lookup(eid); ok {
			e.digest, e.size = d, n
		} else {
			n, err := w.blobSize(eid)
			if err != nil {
				return err
			}
			e.size = n
		}
		if w.bytes += e.size; w.bytes > w.lim.MaxBytes {
			return limitf("tree holds more than %d bytes", w.lim.MaxBytes)
		}
		w.entries = append(w.entries, e)
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range subs {
		if err := w.tree(s.id, s.path, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) blobSize(id plumbing.Hash) (int64, error) {
	if n, ok := w.sizes[id]; ok {
		return n, nil
	}
	obj, err := w.objs.s.EncodedObject(plumbing.AnyObject, id)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return 0, integrityf("blob %s missing", id)
	}
	if err != nil {
		return 0, integrityf("reading blob %s: %v", id, err)
	}
	if obj.Type() != plumbing.BlobObject {
		return 0, hostilef("object %s is a %s, not a blob", id, obj.Type())
	}
	if w.sizes == nil {
		w.sizes = make(map[plumbing.Hash]int64)
	}
	w.sizes[id] = obj.Size()
	return obj.Size(), nil
}

// digests fills in the digest of every blob entry that the sums did not
// know, by reading the blob.
func (w *walker) digests() error {
	for i := range w.entries {
		e := &w.entries[i]
		if e.mode == modeGitlink {
			continue
		}
		if _, _, ok := w.sums.lookup(e.id); ok {
			continue
		}
		d, n, err := w.objs.blobSum(w.ctx, e.id)
		if err != nil {
			return err
		}
		if n != e.size {
			return integrityf("blob %s changed size", e.id)
		}
		e.digest = d
	}
	return nil
}

// t1 returns the tree hash of DESIGN §2 over entries sorted by path.
func t1(entries []entry) string {
	h := sha256.New()
	var line []byte
	for _, e := range entries {
		line = strconv.AppendUint(line[:0], uint64(e.mode), 8)
		line = append(line, ' ')
		line = hex.AppendEncode(line, e.digest[:])
		line = append(line, ' ')
		line = append(line, e.path...)
		line = append(line, '\n')
		h.Write(line)
	}
	return "t1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// TreeHash returns the t1 hash (DESIGN §2) of the tree with id tree in s,
// reading every blob from s. Zero fields of lim take their defaults. It
// is the slow, general path: Hash uses blob digests computed while
// fetching instead of reading blobs again.
func TreeHash(ctx context.Context, s storer.EncodedObjectStorer, tree plumbing.Hash, lim Limits) (string, error) {
	if err := lim.Validate(); err != nil {
		return "", err
	}
	lim = lim.withDefaults()
	w := &walker{ctx: ctx, objs: &objectStore{s: s, lim: lim}, lim: lim}
	if err := w.walk(tree); err != nil {
		return "", err
	}
	if err := w.digests(); err != nil {
		return "", err
	}
	return t1(w.entries), nil
}

// clip shortens a path for an error message.
func clip(p string) string {
	if len(p) <= 120 {
		return p
	}
	return p[:60] + "..." + p[len(p)-57:]
}
