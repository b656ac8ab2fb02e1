package ledger

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxKeyLen is the longest key, in bytes, that the ledger accepts.
const MaxKeyLen = 512

// ErrInvalidKey is wrapped by every error that refuses a key, repository or tag.
var ErrInvalidKey = errors.New("ledger: invalid key")

// A KeyError explains why a key, repository or tag was refused.
type KeyError struct {
	Input  string // what was given (clipped)
	Reason string // what is wrong with it
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("ledger: invalid key %q: %s", e.Input, e.Reason)
}

// Unwrap returns ErrInvalidKey.
func (e *KeyError) Unwrap() error { return ErrInvalidKey }

func keyErr(input, format string, args ...any) error {
	return &KeyError{Input: clip(input), Reason: fmt.Sprintf(format, args...)}
}

// A Key names what the ledger records: a tag of a repository. Both fields are
// canonical (see CanonicalRepo and CheckTag); build keys with ParseKey or
// NewKey, never by hand.
type Key struct {
	Repo string // canonical repository: host/path, host:port/path or file:///abs/path
	Tag  string // short tag name, a valid git ref name component path
}

// String returns the key's canonical text form, "<repo>@<tag>".
func (k Key) String() string { return k.Repo + "@" + k.Tag }

// is reports whether s is k.String(), without building it.
func (k Key) is(s string) bool {
	n := len(k.Repo)
	return len(s) == n+1+len(k.Tag) && s[n] == '@' && s[:n] == k.Repo && s[n+1:] == k.Tag
}

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k.Repo == "" && k.Tag == "" }

// MarshalText implements encoding.TextMarshaler.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it canonicalises.
func (k *Key) UnmarshalText(b []byte) error {
	x, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = x
	return nil
}

// FetchURL returns the URL a validator fetches the repository from:
// https://<repo> for network repositories, the file:// URL itself for local
// ones.
func (k Key) FetchURL() string {
	if strings.HasPrefix(k.Repo, "file://") {
		return k.Repo
	}
	return "https://" + k.Repo
}

// ParseKey parses "<repo>@<tag>" and returns the canonical key. The tag is
// everything after the last '@', so a tag can never contain '@' in key form.
func ParseKey(s string) (Key, error) {
	if k, ok := plainKey(s); ok {
		return k, nil
	}
	return parseKey(s)
}

// parseKey is ParseKey without plainKey's shortcut.
func parseKey(s string) (Key, error) {
	if err := checkKeyText(s); err != nil {
		return Key{}, err
	}
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return Key{}, keyErr(s, "missing '@' between repository and tag")
	}
	repo, tag := s[:i], s[i+1:]
	if repo == "" {
		return Key{}, keyErr(s, "missing repository before '@'")
	}
	// An scp-style repository "git@host:path" with no tag has its only '@'
	// in the user part; report the missing tag rather than a strange repo.
	if !strings.ContainsAny(repo, "/:") {
		return Key{}, keyErr(s, "missing '@<tag>' after the repository")
	}
	// repo and tag pass checkKeyText: s does, and they are split at an
	// ASCII byte.
	return newKey(repo, tag)
}

// Bytes plainKey accepts in a host name, a repository path and a tag.
var hostByte, pathByte, tagByte = func() (h, p, t [256]bool) {
	for c := range 256 {
		lower := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
		h[c] = lower
		p[c] = lower || 'A' <= c && c <= 'Z' || c == '.'
		t[c] = p[c] || c == '+'
	}
	return
}()

// plainKey returns the key s is when s is a key in the common canonical
// form, host/path@tag, that ParseKey returns as it is: a lower-case DNS
// host without a port, path segments of letters, digits, '.', '-' and '_',
// and a tag of those and '+' and '/'. It checks in one pass what ParseKey's
// full parse would (every key record of a block, and of an audit, is parsed
// again, and almost all are of this form). false says only that plainKey
// does not decide: the full parse does.
func plainKey(s string) (Key, bool) {
	if len(s) > MaxKeyLen {
		return Key{}, false
	}
	// The host: labels of 1 to 63 bytes that neither start nor end with
	// '-', up to the first '/'.
	i, label := 0, 0
	for ; i < len(s); i++ {
		c := s[i]
		if c == '.' || c == '/' {
			if label == 0 || label > 63 || s[i-label] == '-' || s[i-1] == '-' {
				return Key{}, false
			}
			label = 0
			if c == '/' {
				break
			}
			continue
		}
		if !hostByte[c] {
			return Key{}, false
		}
		label++
	}
	if i == len(s) || i > 253 {
		return Key{}, false
	}
	// The path: non-empty segments, none "." or "..", up to the '@'.
	seg := 0
	for i++; i < len(s); i++ {
		c := s[i]
		if c == '/' || c == '@' {
			if seg == 0 || seg <= 2 && s[i-seg:i] == ".."[:seg] {
				return Key{}, false
			}
			seg = 0
			if c == '@' {
				break
			}
			continue
		}
		if !pathByte[c] {
			return Key{}, false
		}
		seg++
	}
	if i == len(s) || strings.HasSuffix(s[:i], ".git") {
		return Key{}, false
	}
	// The tag: non-empty components that do not start with '.' or end
	// with ".lock", no "..", no '.' at the end.
	tag := s[i+1:]
	if tag == "" || tag[len(tag)-1] == '.' {
		return Key{}, false
	}
	comp := 0
	for j := 0; j <= len(tag); j++ {
		if j == len(tag) || tag[j] == '/' {
			if comp == 0 || tag[j-comp] == '.' || strings.HasSuffix(tag[j-comp:j], ".lock") {
				return Key{}, false
			}
			comp = 0
			continue
		}
		if c := tag[j]; !tagByte[c] || c == '.' && j > 0 && tag[j-1] == '.' {
			return Key{}, false
		}
		comp++
	}
	return Key{Repo: s[:i], Tag: tag}, true
}

// NewKey canonicalises repo and checks tag, returning the key they form.
func NewKey(repo, tag string) (Key, error) {
	if err := checkKeyText(repo); err != nil {
		return Key{}, err
	}
	if err := checkKeyText(tag); err != nil {
		return Key{}, err
	}
	return newKey(repo, tag)
}

// newKey is NewKey of a repo and tag that pass checkKeyText.
func newKey(repo, tag string) (Key, error) {
	r, err := canonicalRepo(repo)
	if err != nil {
		return Key{}, err
	}
	if strings.Contains(tag, "@") {
		return Key{}, keyErr(tag, "tag contains '@', which a key cannot carry")
	}
	if err := CheckTag(tag); err != nil {
		return Key{}, err
	}
	k := Key{Repo: r, Tag: tag}
	if n := len(r) + 1 + len(tag); n > MaxKeyLen {
		return Key{}, keyErr(k.String(), "key is %d bytes, longer than %d", n, MaxKeyLen)
	}
	return k, nil
}

// checkKeyText refuses text that no key may contain: more than MaxKeyLen
// bytes, invalid UTF-8, control characters (Unicode Cc), white space
// (Unicode White_Space) and invisible format characters (Unicode Cf, such
// as zero-width spaces and bidirectional overrides, which would let two
// keys that look alike differ).
func checkKeyText(s string) error {
	if len(s) > MaxKeyLen {
		return keyErr(s, "%d bytes, longer than %d", len(s), MaxKeyLen)
	}
	// Printable ASCII, the common case, has none of them.
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(s) {
		return keyErr(s, "not valid UTF-8")
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return keyErr(s, "contains control character %U", r)
		case unicode.IsSpace(r):
			return keyErr(s, "contains white space %U", r)
		case unicode.Is(unicode.Cf, r):
			return keyErr(s, "contains format character %U", r)
		}
	}
	return nil
}

// defaultPorts are dropped from canonical repositories: 443 and 22 whatever
// the scheme (DESIGN §2), and each scheme's own default port.
var defaultPorts = map[string]bool{"443": true, "22": true}

var schemePorts = map[string]string{"http": "80", "https": "443", "ssh": "22", "git": "9418", "git+ssh": "22", "ssh+git": "22"}

// CanonicalRepo returns the canonical form of a repository location:
//
//   - scheme, "user@" and a default port (443, 22, or the scheme's own) are
//     dropped and the host is lower-cased: https://User@GitHub.com:443/a/b.git/
//     becomes github.com/a/b;
//   - scp-style user@host:path becomes host/path (git@host:123/x is the
//     path 123/x, as git reads it), while host:123/x, with no user, is the
//     canonical form of host and port 123;
//   - a trailing "/" and then a trailing ".git" are dropped (a path still
//     ending in ".git" is refused);
//   - a bracketed IPv6 host is written in RFC 5952 form;
//   - file:// URLs and absolute local paths become file:///abs/path (cleaned,
//     ".git" kept: it names a directory);
//   - an already canonical host/path is returned unchanged.
//
// Relative local paths, "." and ".." segments, empty path segments, '@' in
// the path, query strings, fragments, backslashes and ports outside 1 to
// 65535 are refused. The result is its own canonical form.
func CanonicalRepo(repo string) (string, error) {
	if err := checkKeyText(repo); err != nil {
		return "", err
	}
	return canonicalRepo(repo)
}

// canonicalRepo is CanonicalRepo of a repo that passes checkKeyText.
func canonicalRepo(repo string) (string, error) {
	if repo == "" {
		return "", keyErr(repo, "empty repository")
	}
	for i := 0; i < len(repo); i++ {
		if c := repo[i]; c == '?' || c == '#' || c == '\\' {
			return "", keyErr(repo, "repository contains '?', '#' or '\\'")
		}
	}
	switch {
	case len(repo) >= 7 && strings.EqualFold(repo[:7], "file://"):
		return canonicalFile(repo, repo[7:])
	case strings.HasPrefix(repo, "/"):
		return canonicalFile(repo, repo)
	}
	var scheme, rest string
	if i := strings.Index(repo, "://"); i >= 0 {
		scheme, rest = strings.ToLower(repo[:i]), repo[i+3:]
		if _, ok := schemePorts[scheme]; !ok {
			return "", keyErr(repo, "unsupported scheme %q (want https, http, ssh, git or file)", scheme)
		}
	} else {
		rest = repo
	}
	// authority: up to the first '/' or, scp-style, the first ':'. Without a
	// scheme, user@host:path is scp-style whatever the path (as git reads
	// it), and host:path is scp-style unless the path is a port number and
	// '/' (the canonical host:port/path). A ':' inside a bracketed IPv6
	// address does not count.
	var host, p string
	slash := strings.IndexByte(rest, '/')
	colon := indexColonAfterBrackets(rest)
	if scheme == "" && colon >= 0 && (slash < 0 || colon < slash) &&
		(strings.Contains(rest[:colon], "@") || !isPortThenSlash(rest[colon+1:])) {
		// scp-style user@host:path
		host, p = rest[:colon], rest[colon+1:]
		p = strings.TrimPrefix(p, "/")
	} else {
		if slash < 0 {
			return "", keyErr(repo, "repository has no path after the host")
		}
		host, p = rest[:slash], rest[slash+1:]
	}
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	port := ""
	if c := strings.LastIndexByte(host, ':'); c >= 0 && c > strings.LastIndexByte(host, ']') {
		host, port = host[:c], host[c+1:]
		if !isDecimal(port) {
			return "", keyErr(repo, "invalid port %q", clip(port))
		}
		port = strings.TrimLeft(port, "0")
		if n, err := strconv.Atoi(port); port == "" || len(port) > 5 || err != nil || n > 65535 {
			return "", keyErr(repo, "invalid port: want 1 to 65535")
		}
		if defaultPorts[port] || (scheme != "" && schemePorts[scheme] == port) {
			port = ""
		}
	}
	host, err := canonicalHost(strings.ToLower(host))
	if err != nil {
		return "", keyErr(repo, "%v", err)
	}
	p = strings.TrimSuffix(p, "/")
	p = strings.TrimSuffix(p, ".git")
	if p == "" {
		return "", keyErr(repo, "repository has no path after the host")
	}
	if strings.HasSuffix(p, ".git") {
		// Dropping a second ".git" would change the repository; keeping it
		// would make a canonical form that is not its own canonical form.
		return "", keyErr(repo, "repository path ends in .git twice")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return "", keyErr(repo, "empty path segment")
		case ".", "..":
			return "", keyErr(repo, "path segment %q", seg)
		}
	}
	if strings.Contains(p, "@") {
		return "", keyErr(repo, "repository path contains '@'")
	}
	if port != "" {
		host += ":" + port
	}
	if n := len(host); len(repo) == n+1+len(p) && repo[n] == '/' && repo[:n] == host && repo[n+1:] == p {
		return repo, nil // canonical already: no need to build it
	}
	return host + "/" + p, nil
}

// indexColonAfterBrackets returns the index of the first ':' in s that is
// not inside a leading "[...]" host (after an optional user@), or -1.
func indexColonAfterBrackets(s string) int {
	from := 0
	if lb := strings.IndexByte(s, '['); lb >= 0 {
		if rb := strings.IndexByte(s[lb:], ']'); rb >= 0 {
			from = lb + rb
		}
	}
	if i := strings.IndexByte(s[from:], ':'); i >= 0 {
		return from + i
	}
	return -1
}

func canonicalFile(repo, p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", keyErr(repo, "local repository path must be absolute")
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "." || seg == ".." {
			return "", keyErr(repo, "path segment %q", seg)
		}
	}
	if strings.Contains(p, "@") {
		return "", keyErr(repo, "repository path contains '@'")
	}
	c := path.Clean(p)
	if c == "/" {
		return "", keyErr(repo, "repository path is the root directory")
	}
	return "file://" + c, nil
}

func isPortThenSlash(s string) bool {
	i := strings.IndexByte(s, '/')
	return i > 0 && isDecimal(s[:i])
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// canonicalHost checks a lower-cased host and returns its canonical form: a
// DNS name or IPv4 address unchanged, or a bracketed IPv6 address in its
// RFC 5952 text form ([0:0::1] becomes [::1]).
func canonicalHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	if len(h) > 253 {
		return "", errors.New("host name too long")
	}
	if h[0] == '[' {
		if h[len(h)-1] != ']' {
			return "", errors.New("unterminated IPv6 address")
		}
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", fmt.Errorf("invalid IPv6 address %q", clip(h))
		}
		return "[" + a.String() + "]", nil
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("invalid host %q", clip(h))
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("invalid character %q in host %q", c, clip(h))
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("invalid host %q", clip(h))
		}
	}
	return h, nil
}

// CheckTag reports whether tag is a short tag name that git accepts as
// refs/tags/<tag> (the rules of git check-ref-format).
func CheckTag(tag string) error {
	if tag == "" {
		return keyErr(tag, "empty tag")
	}
	if strings.HasSuffix(tag, "/") || strings.HasSuffix(tag, ".") {
		return keyErr(tag, "tag ends with '/' or '.'")
	}
	if strings.Contains(tag, "..") || strings.Contains(tag, "@{") || strings.Contains(tag, "//") {
		return keyErr(tag, "tag contains '..', '@{' or '//'")
	}
	for _, c := range tag {
		switch c {
		case ' ', '~', '^', ':', '?', '*', '[', '\\', 0x7f:
		default:
			if c >= 0x20 {
				continue
			}
		}
		return keyErr(tag, "tag contains %q, which git forbids in ref names", c)
	}
	for comp := range strings.SplitSeq(tag, "/") {
		if comp == "" {
			return keyErr(tag, "tag has an empty component")
		}
		if comp[0] == '.' {
			return keyErr(tag, "tag component %q starts with '.'", comp)
		}
		if strings.HasSuffix(comp, ".lock") {
			return keyErr(tag, "tag component %q ends with .lock", comp)
		}
	}
	return nil
}
