package ledger_test

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

// repoCases are inputs of CanonicalRepo and the canonical repository they
// give. Every URL form of DESIGN §2 appears at least once; keys.json is
// built from this table.
var repoCases = []struct {
	in, want string
}{
	// https: user, port 443, .git, trailing slash, host case.
	{"https://github.com/golang/go", "github.com/golang/go"},
	{"https://github.com/golang/go.git", "github.com/golang/go"},
	{"https://github.com/golang/go/", "github.com/golang/go"},
	{"https://github.com/golang/go.git/", "github.com/golang/go"},
	{"https://User@GitHub.com:443/Org/Repo.git/", "github.com/Org/Repo"},
	{"https://user:secret@github.com/a/b", "github.com/a/b"},
	{"HTTPS://GITHUB.COM/a/b", "github.com/a/b"},
	{"https://github.com:0443/a/b", "github.com/a/b"},
	{"https://gitlab.example.com:8443/group/sub/repo.git", "gitlab.example.com:8443/group/sub/repo"},
	{"https://example.com/a.git/b", "example.com/a.git/b"},
	{"https://example.com/a/b.GIT", "example.com/a/b.GIT"},
	{"https://example.com/%7Euser/repo", "example.com/%7Euser/repo"},
	{"https://example.com/é/ü", "example.com/é/ü"},
	{"https://127.0.0.1/a/b", "127.0.0.1/a/b"},
	{"https://[::1]/a/b", "[::1]/a/b"},
	{"https://[::1]:8443/a/b", "[::1]:8443/a/b"},
	{"https://[0:0:0:0:0:0:0:1]:443/a", "[::1]/a"},
	{"https://[2001:DB8::1]/a", "[2001:db8::1]/a"},
	// http: port 80 is http's own default; 443 and 22 are dropped whatever the scheme.
	{"http://example.com/a/b", "example.com/a/b"},
	{"http://example.com:80/a/b", "example.com/a/b"},
	{"http://example.com:443/a/b", "example.com/a/b"},
	{"http://example.com:8080/a/b.git", "example.com:8080/a/b"},
	// ssh:// with port 22 and other ports.
	{"ssh://git@github.com/golang/go.git", "github.com/golang/go"},
	{"ssh://git@github.com:22/golang/go.git", "github.com/golang/go"},
	{"ssh://git@example.com:2222/a/b.git", "example.com:2222/a/b"},
	{"SSH://Git@Example.COM:22/a/b/", "example.com/a/b"},
	{"git+ssh://git@example.com/a/b", "example.com/a/b"},
	{"ssh+git://git@example.com:2222/a/b", "example.com:2222/a/b"},
	// scp-style.
	{"git@github.com:golang/go.git", "github.com/golang/go"},
	{"git@github.com:/golang/go.git", "github.com/golang/go"},
	{"git@GitHub.com:golang/go", "github.com/golang/go"},
	{"git@github.com:123/repo", "github.com/123/repo"},
	{"github.com:golang/go.git", "github.com/golang/go"},
	{"git@[::1]:a/b.git", "[::1]/a/b"},
	// git:// (port 9418 is its own).
	{"git://example.org/a/b.git", "example.org/a/b"},
	{"git://example.org:9418/a/b", "example.org/a/b"},
	{"git://example.org:9419/a/b", "example.org:9419/a/b"},
	// file:// URLs and absolute local paths keep .git.
	{"file:///srv/git/repo.git", "file:///srv/git/repo.git"},
	{"file:///srv/git/repo/", "file:///srv/git/repo"},
	{"FILE:///srv/git/repo", "file:///srv/git/repo"},
	{"file:////srv//git/repo.git/", "file:///srv/git/repo.git"},
	{"/srv/git/repo.git", "file:///srv/git/repo.git"},
	{"/srv/git/Repo:1", "file:///srv/git/Repo:1"},
	{"/tmp/x", "file:///tmp/x"},
	// Already canonical.
	{"github.com/golang/go", "github.com/golang/go"},
	{"example.com:8443/a/b", "example.com:8443/a/b"},
	{"example.com:22/a/b", "example.com/a/b"},
	{"my_host.example/a", "my_host.example/a"},
	{"localhost/a", "localhost/a"},
	{"[::1]/a/b", "[::1]/a/b"},
	{"[::1]:8443/a/b", "[::1]:8443/a/b"},
}

// badRepoCases are refused by CanonicalRepo.
var badRepoCases = []string{
	"",
	"github.com",
	"https://github.com",
	"https://github.com/",
	"https://github.com/.git",
	"https://github.com/a/.git",
	"https://github.com/a/b.git.git",
	"https://github.com/a//b",
	"https://github.com/a/./b",
	"https://github.com/a/../b",
	"https://github.com/a?tab=readme",
	"https://github.com/a#readme",
	"https://github.com/a\\b",
	"https://github.com/a b",
	"https://github.com/a\tb",
	"https://github.com/a\u00a0b",
	"https://github.com/a\u2028b",
	"https://github.com/a\x00b",
	"https://github.com/a\x7fb",
	"https://github.com/a\u0085b",
	"https://github.com/a\xffb",
	"https://github.com/a/b@c",
	"ftp://example.com/a/b",
	"svn+ssh://example.com/a/b",
	"https://example.com:99999/a",
	"https://example.com:65536/a",
	"https://example.com:0/a",
	"https://example.com:/a",
	"https://example.com:x/a",
	"https://example.com:-1/a",
	"https://-example.com/a",
	"https://example-.com/a",
	"https://example..com/a",
	"https://example.com./a",
	"https://exa$mple.com/a",
	"https://bücher.example/a",
	"https://[::1/a",
	"https://[]/a",
	"https://[::g]/a",
	"https://[fe80::1%25eth0]/a",
	"https://[1.2.3.4]/a",
	"https://" + strings.Repeat("a", 64) + ".com/a",
	"./repo",
	"../repo",
	"repo",
	"file://relative/path",
	"file://localhost/srv/repo",
	"file:///",
	"/",
	"//",
	"file:///srv/../etc",
	"/srv/./repo",
	"/srv/repo@v1",
	"C:\\src\\repo",
	"https://example.com/" + strings.Repeat("a", ledger.MaxKeyLen),
}

func TestCanonicalRepo(t *testing.T) {
	for _, tc := range repoCases {
		got, err := ledger.CanonicalRepo(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalRepo(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		// The canonical form is its own canonical form.
		if again, err := ledger.CanonicalRepo(got); err != nil || again != got {
			t.Errorf("CanonicalRepo(%q) = %q, %v; want it unchanged", got, again, err)
		}
	}
	for _, in := range badRepoCases {
		got, err := ledger.CanonicalRepo(in)
		if err == nil {
			t.Errorf("CanonicalRepo(%q) = %q, nil; want error", in, got)
			continue
		}
		var ke *ledger.KeyError
		if !errors.Is(err, ledger.ErrInvalidKey) || !errors.As(err, &ke) {
			t.Errorf("CanonicalRepo(%q) = %v; want a *KeyError wrapping ErrInvalidKey", in, err)
		}
	}
}

// keyCases are inputs of ParseKey: the canonical key, or "" for an error.
var keyCases = []struct {
	in, want string
}{
	{"github.com/golang/go@v1.21.0", "github.com/golang/go@v1.21.0"},
	{"https://github.com/golang/go.git@v1.21.0", "github.com/golang/go@v1.21.0"},
	{"git@github.com:golang/go.git@go1.21.0", "github.com/golang/go@go1.21.0"},
	{"ssh://git@example.com:2222/a/b.git@release/1.0", "example.com:2222/a/b@release/1.0"},
	{"file:///srv/git/repo.git@v0.1.0", "file:///srv/git/repo.git@v0.1.0"},
	{"/srv/git/repo@v0.1.0", "file:///srv/git/repo@v0.1.0"},
	{"github.com/a/b@-v1", "github.com/a/b@-v1"},
	{"github.com/a/b@v1.lock.x", "github.com/a/b@v1.lock.x"},
	{"github.com/a/b@é", "github.com/a/b@é"},
	{"github.com/a/b@{x}", "github.com/a/b@{x}"},
	{"github.com/a/b@a/b/c", "github.com/a/b@a/b/c"},
	{"example.com/a@" + strings.Repeat("x", ledger.MaxKeyLen-len("example.com/a@")), "example.com/a@" + strings.Repeat("x", ledger.MaxKeyLen-len("example.com/a@"))},

	{"", ""},
	{"github.com/a/b", ""},
	{"github.com/a/b@", ""},
	{"@v1", ""},
	{"git@github.com:a/b", ""},
	{"github.com/a/b@v1@v2", ""},
	{"github.com/a/b@v1 ", ""},
	{" github.com/a/b@v1", ""},
	{"github.com/a/b@v1\n", ""},
	{"github.com/a/b@v1\r", ""},
	{"github.com/a/b@v\u20001", ""},
	{"github.com/a/b@v1\ufeff", ""},
	{"github.com/a/b@v1\u202e", ""},
	{"github.com/a/\u200bb@v1", ""},
	{"github.com/a/b\u00ad@v1", ""},
	{"github.com/a/b@v1\u0085", ""},
	{"github.com/a/b@v1\u3000", ""},
	{"github.com/a/b@v1..2", ""},
	{"github.com/a/b@v1.lock", ""},
	{"github.com/a/b@v1/", ""},
	{"github.com/a/b@/v1", ""},
	{"github.com/a/b@v1.", ""},
	{"github.com/a/b@.v1", ""},
	{"github.com/a/b@a//b", ""},
	{"github.com/a/b@a/.b", ""},
	{"github.com/a/b@v1^{}", ""},
	{"github.com/a/b@v1~1", ""},
	{"github.com/a/b@a:b", ""},
	{"github.com/a/b@a?", ""},
	{"github.com/a/b@a*", ""},
	{"github.com/a/b@a[1]", ""},
	{"github.com/a/b@a\\b", ""},
	{"example.com/a@" + strings.Repeat("x", ledger.MaxKeyLen-len("example.com/a@")+1), ""},
	{"https://example.com/a@" + strings.Repeat("x", ledger.MaxKeyLen-len("example.com/a@")+1), ""},
	{"https://github.com/a/b.git/@v1", "github.com/a/b@v1"},
}

func TestParseKey(t *testing.T) {
	for _, tc := range keyCases {
		k, err := ledger.ParseKey(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseKey(%q) = %q, nil; want error", tc.in, k)
			} else if !errors.Is(err, ledger.ErrInvalidKey) {
				t.Errorf("ParseKey(%q) = %v; want ErrInvalidKey", tc.in, err)
			}
			continue
		}
		if err != nil || k.String() != tc.want {
			t.Errorf("ParseKey(%q) = %q, %v; want %q", tc.in, k, err, tc.want)
			continue
		}
		if k2, err := ledger.ParseKey(k.String()); err != nil || k2 != k {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", k.String(), k2, err, k)
		}
		var u ledger.Key
		if err := u.UnmarshalText([]byte(tc.in)); err != nil || u != k {
			t.Errorf("Key.UnmarshalText(%q) = %+v, %v; want %+v", tc.in, u, err, k)
		}
	}
	// Every canonical repository with a tag is a key.
	for _, tc := range repoCases {
		k, err := ledger.ParseKey(tc.in + "@v1.0.0")
		if err != nil || k.Repo != tc.want || k.Tag != "v1.0.0" {
			t.Errorf("ParseKey(%q) = %+v, %v; want repo %q tag v1.0.0", tc.in+"@v1.0.0", k, err, tc.want)
		}
	}
}

func TestNewKey(t *testing.T) {
	k, err := ledger.NewKey("git@github.com:golang/go.git", "go1.21.0")
	if want := (ledger.Key{Repo: "github.com/golang/go", Tag: "go1.21.0"}); err != nil || k != want {
		t.Errorf("NewKey = %+v, %v; want %+v", k, err, want)
	}
	for _, tc := range []struct{ repo, tag string }{
		{"github.com/a/b", "a@b"},
		{"github.com/a/b", "@"},
		{"github.com/a/b", ""},
		{"github.com/a/b", "v 1"},
		{"", "v1"},
		{"github.com/a/b", strings.Repeat("x", ledger.MaxKeyLen+1)},
	} {
		if k, err := ledger.NewKey(tc.repo, tc.tag); !errors.Is(err, ledger.ErrInvalidKey) {
			t.Errorf("NewKey(%q, %q) = %+v, %v; want ErrInvalidKey", tc.repo, tc.tag, k, err)
		}
	}
}

func TestKeyText(t *testing.T) {
	k := ledger.Key{Repo: "github.com/golang/go", Tag: "v1.0.0"}
	b, err := json.Marshal(map[string]ledger.Key{"k": k})
	if err != nil || string(b) != `{"k":"github.com/golang/go@v1.0.0"}` {
		t.Fatalf("json.Marshal(key) = %s, %v", b, err)
	}
	var m map[string]ledger.Key
	if err := json.Unmarshal([]byte(`{"k":"https://GitHub.com/golang/go.git@v1.0.0"}`), &m); err != nil || m["k"] != k {
		t.Errorf("json.Unmarshal(key) = %+v, %v; want %+v", m["k"], err, k)
	}
	if err := json.Unmarshal([]byte(`{"k":"github.com/golang/go"}`), &m); !errors.Is(err, ledger.ErrInvalidKey) {
		t.Errorf("json.Unmarshal(key without tag) = %v; want ErrInvalidKey", err)
	}
	if !(ledger.Key{}).IsZero() || k.IsZero() {
		t.Errorf("IsZero wrong")
	}
	for _, tc := range []struct{ repo, want string }{
		{"github.com/golang/go", "https://github.com/golang/go"},
		{"example.com:2222/a", "https://example.com:2222/a"},
		{"file:///srv/repo.git", "file:///srv/repo.git"},
	} {
		if got := (ledger.Key{Repo: tc.repo, Tag: "v1"}).FetchURL(); got != tc.want {
			t.Errorf("Key{Repo: %q}.FetchURL() = %q, want %q", tc.repo, got, tc.want)
		}
	}
}

// tagCorpus is checked against CheckTag and against git check-ref-format.
var tagCorpus = []string{
	"v1", "v1.0.0", "v1.0.0-rc.1+build.5", "release/1.0", "a/b/c", "-v1", "@", "@@",
	"a@b", "{", "}", "é", "日本", "v1.lock.x", "a.b", "a_b", "a-b", "a,b", "a=b", "a'b",
	"a\"b", "a!b", "a$b", "a%b", "a&b", "a(b)", "a;b", "a<b>", "a|b", "a`b", "a#b", "+",
	// refused
	"", ".", "..", "a..b", ".a", "a/.b", "a.", "a/b.", "a/", "/a", "a//b", "a.lock",
	"a/b.lock", "a.lock/b", "a@{b", "@{", "a b", "a\tb", "a\x01b", "a\x7fb", "a~1", "a^",
	"a:b", "a?", "a*", "a[", "a\\b", "a/./b", "a/../b", "lock/.lock", ".lock",
}

func TestCheckTag(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	for _, tag := range tagCorpus {
		err := ledger.CheckTag(tag)
		// git check-ref-format reads arguments, so an empty tag is "refs/tags/".
		gitOK := exec.Command(git, "check-ref-format", "refs/tags/"+tag).Run() == nil
		if (err == nil) != gitOK {
			t.Errorf("CheckTag(%q) = %v; git check-ref-format says valid=%v", tag, err, gitOK)
		}
		if err != nil && !errors.Is(err, ledger.ErrInvalidKey) {
			t.Errorf("CheckTag(%q) = %v; want ErrInvalidKey", tag, err)
		}
	}
}

// TestPlainKey checks ParseKey's one-pass shortcut against its full parse:
// on every input of the key, repository and tag tables, and on inputs
// made to sit at the shortcut's edges, what the shortcut accepts the full
// parse accepts as the same key. And the shortcut does decide the common
// canonical keys.
func TestPlainKey(t *testing.T) {
	inputs := []string{
		"github.com/golang/go@v1.21.0",
		"my_host.example/a@v1",
		"gitlab.example.com/group/sub/repo@release/1.2+build.7",
		"a.b/c@d",
		"a/b@c",
		"1.2.3.4/a@v1",
		// At the edges: each is refused by the full parse or is not its
		// canonical form, or has what the shortcut leaves to the full parse.
		"GitHub.com/a@v1", "github.com:8443/a@v1", "github.com:443/a@v1",
		"github.com/a.git@v1", "github.com/.git@v1", "github.com/a/.git@v1", "github.com/a.git/b@v1",
		"github.com/a/@v1", "github.com//a@v1", "github.com/a/./b@v1", "github.com/a/../b@v1",
		"github.com/.@v1", "github.com/..@v1", "github.com/...@v1", "github.com/.a@v1",
		"github.com@v1", "github.com/@v1", "/a/b@v1", "@v1", "github.com/a@", "github.com/a",
		"-a.com/b@v1", "a-.com/b@v1", "a..com/b@v1", ".a.com/b@v1", "a.com./b@v1", "a.-b.com/c@v1",
		strings.Repeat("a", 63) + ".com/b@v1", strings.Repeat("a", 64) + ".com/b@v1",
		strings.Repeat("a.", 126) + "a/b@v1", strings.Repeat("a.", 127) + "a/b@v1",
		"github.com/a@v1.", "github.com/a@v1/", "github.com/a@/v1", "github.com/a@v1//x",
		"github.com/a@v..1", "github.com/a@.v1", "github.com/a@v1/.x", "github.com/a@v1.lock",
		"github.com/a@x.lock/v1", "github.com/a@v1.lock2", "github.com/a@v1@v2", "github.com/a@b@v1",
		"github.com/a@v1~1", "github.com/a@v1^", "github.com/a@v1:x", "github.com/a@v 1",
		"github.com/a@+", "github.com/a@-", "github.com/a@_", "github.com/a b@v1",
		"github.com/a%41@v1", "github.com/a~b@v1", "github.com/a:b@v1", "github.com/a://b@v1",
		"github.com/" + strings.Repeat("a", ledger.MaxKeyLen-14) + "@v1", // MaxKeyLen bytes
		"github.com/" + strings.Repeat("a", ledger.MaxKeyLen-13) + "@v1", // one more
	}
	for _, tc := range keyCases {
		inputs = append(inputs, tc.in)
	}
	for _, tc := range repoCases {
		inputs = append(inputs, tc.in+"@v1", tc.want+"@v1")
	}
	for _, r := range badRepoCases {
		inputs = append(inputs, r+"@v1")
	}
	for _, tag := range tagCorpus {
		inputs = append(inputs, "github.com/a/b@"+tag)
	}
	plain := 0
	for _, s := range inputs {
		k, ok := ledger.PlainKey(s)
		if !ok {
			continue
		}
		plain++
		full, err := ledger.ParseKeyFull(s)
		if err != nil || full != k || k.String() != s {
			t.Errorf("PlainKey(%q) = %+v; the full parse gives %+v, %v", s, k, full, err)
		}
	}
	for _, s := range inputs[:6] {
		if _, ok := ledger.PlainKey(s); !ok {
			t.Errorf("PlainKey(%q) does not decide a common canonical key", s)
		}
	}
	t.Logf("%d of %d inputs decided by PlainKey", plain, len(inputs))
}
