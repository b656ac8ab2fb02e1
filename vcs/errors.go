package vcs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Sentinel errors. Every error that Hash returns is an *Error wrapping
// exactly one of these (or context.Canceled when the caller cancelled).
var (
	// ErrRepoNotFound means the remote has no repository at that location.
	ErrRepoNotFound = errors.New("vcs: repository not found")
	// ErrTagNotFound means the repository has no tag of that name.
	ErrTagNotFound = errors.New("vcs: tag not found")
	// ErrNotCommit means the tag does not peel to a commit (it names a tree or a blob).
	ErrNotCommit = errors.New("vcs: tag does not point to a commit")
	// ErrAuth means the remote refused the credentials, or wanted some.
	ErrAuth = errors.New("vcs: authentication failed")
	// ErrNetwork means the remote could not be reached or the transfer broke off.
	ErrNetwork = errors.New("vcs: network error")
	// ErrTimeout means Options.Timeout (or the caller's deadline) expired.
	ErrTimeout = errors.New("vcs: timeout")
	// ErrHostile means the repository or the server sent something no honest
	// git repository contains: a path with a newline or NUL, a malformed tree
	// or pack, objects that do not match their ids.
	ErrHostile = errors.New("vcs: hostile repository")
	// ErrLimit means the repository is larger or deeper than Options.Limits allow.
	ErrLimit = errors.New("vcs: repository over limits")
	// ErrInvalid means the arguments or options given to vcs are not valid.
	ErrInvalid = errors.New("vcs: invalid argument")
	// ErrCache means the cache directory could not be used.
	ErrCache = errors.New("vcs: cache error")
)

// An Error describes why hashing a tag of a repository failed. Repo never
// contains a password, and Err's text has control characters removed, since
// part of it may come from the remote.
type Error struct {
	Op   string // what was being done: "list refs", "fetch", "hash", ...
	Repo string // the repository, as given, with any password removed
	Tag  string // the tag
	Kind error  // one of the sentinel errors of this package, or context.Canceled
	Err  error  // the underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vcs: ")
	b.WriteString(e.Op)
	b.WriteString(" ")
	b.WriteString(e.Repo)
	if e.Tag != "" {
		b.WriteString(" tag ")
		b.WriteString(e.Tag)
	}
	b.WriteString(": ")
	kind := "failed"
	if e.Kind != nil {
		kind = strings.TrimPrefix(e.Kind.Error(), "vcs: ")
	}
	b.WriteString(kind)
	if e.Err != nil {
		// go-git repeats itself ("authentication required: authentication
		// required"): drop segments equal to the kind or to the one before.
		prev := kind
		for _, seg := range strings.Split(clean(e.Err.Error()), ": ") {
			seg = strings.TrimRight(strings.TrimSpace(seg), ":. ")
			if seg == "" || seg == prev || seg == "vcs" {
				continue
			}
			b.WriteString(": ")
			b.WriteString(seg)
			prev = seg
		}
	}
	return b.String()
}

// Unwrap returns the kind and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// kindError carries a sentinel kind together with a detail message inside the
// package, until it reaches the boundary where it becomes an *Error.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string {
	if e.err == nil {
		return e.kind.Error()
	}
	return strings.TrimPrefix(e.kind.Error(), "vcs: ") + ": " + e.err.Error()
}

func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// errorf returns an error of the given kind with a formatted detail.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// hostilef and limitf are shorthands for the two kinds found most often.
func hostilef(format string, args ...any) error { return errorf(ErrHostile, format, args...) }
func limitf(format string, args ...any) error   { return errorf(ErrLimit, format, args...) }

// newError turns err into an *Error for op on repo and tag, classifying
// errors from go-git, the network and the context into a sentinel kind.
func newError(ctx context.Context, op, repo, tag string, err error) error {
	var ve *Error
	if errors.As(err, &ve) {
		return err
	}
	e := &Error{Op: op, Repo: redact(repo), Tag: tag}
	var ke *kindError
	if errors.As(err, &ke) {
		e.Kind, e.Err = ke.kind, ke.err
		// A context error that surfaced as, say, a broken pipe is still the
		// context's doing.
		if ke.kind == ErrNetwork && ctx.Err() != nil {
			e.Kind, e.Err = contextKind(ctx.Err()), err
		}
		return e
	}
	for _, k := range kinds {
		if errors.Is(err, k) {
			e.Kind, e.Err = k, err
			return e
		}
	}
	e.Kind, e.Err = classify(ctx, err), err
	return e
}

var kinds = []error{ErrRepoNotFound, ErrTagNotFound, ErrNotCommit, ErrAuth, ErrNetwork, ErrTimeout, ErrHostile, ErrLimit, ErrInvalid, ErrCache}

func contextKind(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrTimeout
	}
	return context.Canceled
}

// classify maps an error from go-git's transports to a sentinel kind.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return contextKind(ctx.Err())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return ErrRepoNotFound
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return ErrTagNotFound
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod):
		return ErrAuth
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	// go-git's SSH transport and golang.org/x/crypto/ssh report failed
	// authentication, unknown host keys and a missing agent only as text,
	// so these are recognised by their messages.
	msg := err.Error()
	for _, s := range []string{"ssh: handshake failed", "ssh: unable to authenticate", "knownhosts:", "SSH agent", "SSH_AUTH_SOCK"} {
		if strings.Contains(msg, s) {
			return ErrAuth
		}
	}
	// Everything else went wrong talking to the remote: refused or reset
	// connections, DNS, a transfer cut short, a remote-side error.
	return ErrNetwork
}

// redact removes a password from a URL's user information.
func redact(repo string) string {
	u, err := url.Parse(repo)
	if err != nil || u.User == nil {
		return clean(repo)
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return clean(u.String())
}

// clean makes text that may come from a remote safe to print: line breaks
// and tabs become spaces, other control characters are dropped, invalid
// UTF-8 becomes U+FFFD and the text is clipped to about 1000 bytes.
func clean(s string) string {
	const max = 1000
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= max {
			b.WriteString("...")
			break
		}
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			// dropped
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}
