package vcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/file"
	gitproto "github.com/go-git/go-git/v5/plumbing/transport/git"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Response size caps for smart HTTP: the ref advertisement, and the body of
// an error response (which go-git reads whole into its error message).
const (
	maxAdvertBytes = 256 << 20
	maxErrorBody   = 16 << 10
)

// httpClient is shared by every HTTP(S) fetch so connections are reused.
// Redirects are followed at most 10 times and never from https to http.
var httpClient = &http.Client{
	Transport: &limitTransport{rt: http.DefaultTransport.(*http.Transport).Clone()},
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return errors.New("refusing redirect from https to " + req.URL.Scheme)
		}
		return nil
	},
}

var httpTransport = githttp.NewClient(httpClient)

// limitTransport caps the bodies that go-git reads into memory whole.
type limitTransport struct{ rt http.RoundTripper }

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	switch {
	case res.StatusCode >= 300:
		res.Body = &limitedBody{rc: res.Body, n: maxErrorBody, truncate: true}
	case req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/info/refs"):
		res.Body = &limitedBody{rc: res.Body, n: maxAdvertBytes}
	}
	return res, nil
}

// limitedBody returns at most n bytes, then EOF (truncate) or an error.
type limitedBody struct {
	rc       io.ReadCloser
	n        int64
	truncate bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		if b.truncate {
			return 0, io.EOF
		}
		return 0, limitf("ref advertisement is larger than %d bytes", int64(maxAdvertBytes))
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.rc.Read(p)
	b.n -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// A remote is one upload-pack session with a repository.
type remote struct {
	url  string
	sess transport.UploadPackSession
	refs *packp.AdvRefs
	once sync.Once
}

// dial opens an upload-pack session and reads the ref advertisement. SSH
// connects without a context in go-git, so the connection runs on its own
// goroutine and dial returns as soon as ctx is done.
func dial(ctx context.Context, repoURL string, opts *Options) (*remote, error) {
	ep, t, auth, err := endpoint(repoURL, opts)
	if err != nil {
		return nil, err
	}
	type answer struct {
		sess transport.UploadPackSession
		refs *packp.AdvRefs
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		sess, err := t.NewUploadPackSession(ep, auth)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		refs, err := sess.AdvertisedReferencesContext(ctx)
		if err != nil {
			sess.Close()
			ch <- answer{err: err}
			return
		}
		ch <- answer{sess: sess, refs: refs}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			return nil, a.err
		}
		return &remote{url: repoURL, sess: a.sess, refs: a.refs}, nil
	case <-ctx.Done():
		go func() {
			if a := <-ch; a.sess != nil {
				a.sess.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// endpoint parses repoURL and picks the transport and credentials for it.
func endpoint(repoURL string, opts *Options) (*transport.Endpoint, transport.Transport, transport.AuthMethod, error) {
	if repoURL == "" || strings.HasPrefix(repoURL, "-") || strings.ContainsAny(repoURL, "\x00\n\r") {
		return nil, nil, nil, errorf(ErrInvalid, "bad repository location %q", repoURL)
	}
	ep, err := transport.NewEndpoint(repoURL)
	if err != nil {
		return nil, nil, nil, errorf(ErrInvalid, "%v", err)
	}
	var auth transport.AuthMethod
	switch ep.Protocol {
	case "https", "http":
		if opts.HTTPAuth != nil && (ep.Protocol == "https" || isLoopback(ep.Host)) {
			if user, pass, ok := opts.HTTPAuth(strings.ToLower(ep.Host)); ok {
				auth = &githttp.BasicAuth{Username: user, Password: pass}
			}
		}
		return ep, httpTransport, auth, nil
	case "file":
		return ep, file.DefaultClient, nil, nil
	case "ssh":
		return ep, ssh.DefaultClient, nil, nil
	case "git":
		return ep, gitproto.DefaultClient, nil, nil
	}
	return nil, nil, nil, errorf(ErrInvalid, "unsupported scheme %q (want https, http, ssh, git, file or a local path)", ep.Protocol)
}

func isLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (r *remote) close() {
	r.once.Do(func() { r.sess.Close() })
}

// tag returns the object refs/tags/<tag> names and, when the server
// advertises it, the commit it peels to.
func (r *remote) tag(tag string) (want, peeled plumbing.Hash, err error) {
	name := "refs/tags/" + tag
	want, ok := r.refs.References[name]
	if !ok {
		tags := 0
		for n := range r.refs.References {
			if strings.HasPrefix(n, "refs/tags/") {
				tags++
			}
		}
		return want, peeled, errorf(ErrTagNotFound, "the repository has no %s (it has %d tags)", name, tags)
	}
	return want, r.refs.Peeled[name], nil
}

// fetch asks for want at depth 1 and indexes the pack it receives into dir.
func (r *remote) fetch(ctx context.Context, want plumbing.Hash, dir string, lim Limits, prog *progress) error {
	caps := r.refs.Capabilities
	req := packp.NewUploadPackRequestFromCapabilities(caps)
	for _, c := range []capability.Capability{capability.ThinPack, capability.MultiACK, capability.MultiACKDetailed} {
		req.Capabilities.Delete(c)
	}
	if caps.Supports(capability.NoProgress) {
		req.Capabilities.Set(capability.NoProgress)
	}
	if caps.Supports(capability.Shallow) {
		// Without it the server sends the whole history: still bounded by
		// the limits, only slower.
		req.Depth = packp.DepthCommits(1)
		req.Capabilities.Set(capability.Shallow)
	}
	req.Wants = []plumbing.Hash{want}

	// fctx is cancelled when indexing stops early, so that the transport
	// kills a git-upload-pack (or ssh) process still writing the pack
	// instead of waiting for it.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := r.sess.UploadPack(fctx, req)
	if err != nil {
		return err
	}
	defer func() {
		cancel()
		io.CopyN(io.Discard, resp, 1<<20) // fails at once after cancel, killing the process
		resp.Close()
	}()
	var pack io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	if _, err := indexPack(ctx, pack, dir, lim, prog); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ke *kindError
		if !errors.As(err, &ke) {
			return fmt.Errorf("receiving pack: %w", err)
		}
		return err
	}
	return nil
}
