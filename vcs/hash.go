package vcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// Options configure Hash. The zero value is valid: no persistent cache, no
// progress, default limits, no timeout, no credentials.
type Options struct {
	// CacheDir is where fetched objects are kept between calls (see
	// DefaultCacheDir). Empty means a temporary directory removed when Hash
	// returns.
	CacheDir string
	// Progress, if set, receives a self-overwriting progress line while a
	// pack is received.
	Progress io.Writer
	// Limits bound the repository; zero fields take their defaults.
	Limits Limits
	// Module is the Go module path to compute h1 for. Empty means the
	// module declared by the go.mod at Subdir, if any.
	Module string
	// Subdir is the module's directory within the repository, slash
	// separated, for h1 only: t1 always covers the whole tree.
	Subdir string
	// Timeout bounds the whole call when positive.
	Timeout time.Duration
	// HTTPAuth, if set, is asked for HTTP basic credentials for a host
	// before an https:// fetch (or an http:// fetch from a loopback
	// address); ok false means anonymous. Credentials are never sent over
	// plain http to another host, never logged and never put in errors.
	HTTPAuth func(host string) (user, password string, ok bool)
}

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	if err := o.Limits.Validate(); err != nil {
		return err
	}
	if o.Timeout < 0 {
		return fmt.Errorf("%w: negative timeout", ErrInvalid)
	}
	if o.Subdir != "" {
		s := o.Subdir
		if path.Clean(s) != s || path.IsAbs(s) || s == "." || s == ".." || strings.HasPrefix(s, "../") || strings.ContainsAny(s, "\\\x00\n") {
			return fmt.Errorf("%w: subdirectory %q must be a clean relative slash-separated path", ErrInvalid, s)
		}
	}
	return nil
}

// A Result is the outcome of hashing a tag of a repository.
type Result struct {
	Repo      string // the repository, as given (any password removed)
	Tag       string // the tag
	Commit    string // lowercase hex id of the commit the tag peels to
	TagObject string // lowercase hex id of the annotated tag object; empty for a lightweight tag
	Tree      string // the t1 hash of the commit's tree (DESIGN §2)
	Files     int    // number of non-directory entries hashed
	Bytes     int64  // total size of the files and symbolic links hashed

	Module  string // Go module path, when the tree (or Options.Module) names one
	Version string // the module version the tag stands for, e.g. v1.2.3 or v2.0.0+incompatible
	H1      string // h1 hash of <Module>@<Version>, as go.sum records it
	GoModH1 string // h1 hash of <Module>@<Version>/go.mod
	H1Note  string // why H1 is empty although the tree looks like a Go module
}

// Hash fetches the tag of the repository at repoURL and hashes the tree of
// the commit it peels to.
//
// repoURL is anything git accepts: https:// and http:// (smart HTTP),
// ssh:// and scp-style user@host:path (with the SSH agent and
// ~/.ssh/known_hosts), git://, file:// or a local path (both run git's
// git-upload-pack). tag is the short tag name.
//
// Every call lists the remote's refs, so the result always reflects what
// the remote serves now; objects already in Options.CacheDir are not
// transferred again. The returned error is an *Error.
func Hash(ctx context.Context, repoURL, tag string, opts Options) (*Result, error) {
	fail := func(op string, err error) (*Result, error) {
		return nil, newError(ctx, op, repoURL, tag, err)
	}
	if err := opts.Validate(); err != nil {
		return fail("hash", err)
	}
	if err := plumbing.ReferenceName("refs/tags/" + tag).Validate(); err != nil || strings.HasPrefix(tag, "refs/") {
		return fail("hash", errorf(ErrInvalid, "%q is not a valid tag name", tag))
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	lim := opts.Limits.withDefaults()
	root := opts.CacheDir
	if root == "" {
		tmp, err := os.MkdirTemp("", "vcsverify-")
		if err != nil {
			return fail("hash", errorf(ErrCache, "%w", err))
		}
		defer os.RemoveAll(tmp)
		root = tmp
	}

	h := &hashing{ctx: ctx, repo: repoURL, tag: tag, opts: &opts, lim: lim, root: root}
	res, err := h.run(false)
	var ie *integrityError
	if err != nil && !h.fetched && ctx.Err() == nil && (errors.As(err, &ie) || errors.Is(err, errDamaged)) {
		// A damaged cache entry: fetch it again.
		res, err = h.run(true)
	}
	if err != nil {
		return fail(h.op, err)
	}
	return res, nil
}

// hashing is one call of Hash.
type hashing struct {
	ctx     context.Context
	repo    string
	tag     string
	opts    *Options
	lim     Limits
	root    string
	op      string
	fetched bool // objects came from the network, not the cache
}

func (h *hashing) run(refetch bool) (*Result, error) {
	h.op = "list refs of"
	r, err := dial(h.ctx, h.repo, h.opts)
	if err != nil {
		return nil, err
	}
	defer r.close()
	want, peeled, err := r.tag(h.tag)
	if err != nil {
		return nil, err
	}

	h.op = "fetch"
	entry := entryDir(h.root, want)
	unlock, err := lock(h.ctx, entry+".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if refetch || !complete(entry) {
		if err := prepare(entry); err != nil {
			return nil, err
		}
		prog := newProgress(h.opts.Progress, "fetching "+redact(h.repo)+" "+clean(h.tag))
		err := r.fetch(h.ctx, want, packDir(entry), h.lim, prog)
		prog.done()
		if err != nil {
			os.RemoveAll(entry)
			return nil, err
		}
		h.fetched = true
	}
	r.close()

	h.op = "hash"
	st, sums, err := openEntry(entry)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	objs := &objectStore{s: st, lim: h.lim}

	res := &Result{Repo: redact(h.repo), Tag: h.tag}
	commit, tagObj, err := peel(objs, want)
	if err != nil {
		return nil, err
	}
	if !peeled.IsZero() && peeled != commit {
		return nil, hostilef("the server advertises %s as peeling to %s, but it peels to %s", h.tag, peeled, commit)
	}
	res.Commit = commit.String()
	if !tagObj.IsZero() {
		res.TagObject = tagObj.String()
	}
	data, _, err := objs.read(commit, plumbing.CommitObject)
	if err != nil {
		return nil, err
	}
	tree, err := parseCommitTree(data)
	if err != nil {
		return nil, err
	}
	w := &walker{ctx: h.ctx, objs: objs, sums: sums, lim: h.lim}
	if err := w.walk(tree); err != nil {
		return nil, err
	}
	if err := w.digests(); err != nil {
		return nil, err
	}
	res.Tree = t1(w.entries)
	res.Files, res.Bytes = len(w.entries), w.bytes

	m, err := moduleHash(objs, w.entries, h.tag, h.opts.Module, h.opts.Subdir)
	if err != nil {
		return nil, err
	}
	res.Module, res.Version, res.H1, res.GoModH1, res.H1Note = m.Path, m.Version, m.H1, m.GoModH1, m.Note
	return res, nil
}

// peel follows annotated tags from id to the commit they name. tagObj is
// id when id is a tag object.
func peel(objs *objectStore, id plumbing.Hash) (commit, tagObj plumbing.Hash, err error) {
	for i := 0; i < 16; i++ {
		data, typ, err := objs.read(id, plumbing.AnyObject)
		if err != nil {
			return commit, tagObj, err
		}
		switch typ {
		case plumbing.CommitObject:
			return id, tagObj, nil
		case plumbing.TagObject:
			if i == 0 {
				tagObj = id
			}
			next, nextTyp, err := parseTagTarget(data)
			if err != nil {
				return commit, tagObj, err
			}
			if nextTyp != plumbing.CommitObject && nextTyp != plumbing.TagObject {
				return commit, tagObj, errorf(ErrNotCommit, "the tag points to a %s", nextTyp)
			}
			id = next
		default:
			return commit, tagObj, errorf(ErrNotCommit, "the tag points to a %s", typ)
		}
	}
	return commit, tagObj, hostilef("chain of more than 16 annotated tags")
}
