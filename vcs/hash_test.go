package vcs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

var update = flag.Bool("update", false, "rewrite testdata/repos/golden.json")

const goldenFile = "../testdata/repos/golden.json"

// A hashCase is one tag of a fixture repository, with the module options.
type hashCase struct {
	repo, tag      string
	module, subdir string
}

func (c hashCase) name() string {
	s := c.repo + " " + c.tag
	if c.module != "" {
		s += " module=" + c.module
	}
	if c.subdir != "" {
		s += " subdir=" + c.subdir
	}
	return s
}

func (c hashCase) url() string { return "file://" + filepath.Join(fixtures, c.repo) }

var hashCases = []hashCase{
	{repo: "basic", tag: "v1.0.0"},
	{repo: "basic", tag: "light"},
	{repo: "basic", tag: "nested"},
	{repo: "basic", tag: "moving"},
	{repo: "gomod", tag: "v0.9.0"},
	{repo: "gomod", tag: "v1.0.0"},
	{repo: "gomod", tag: "v1.0.1"},
	{repo: "gomod", tag: "v2.0.0"},
	{repo: "gomod", tag: "release-1"},
	{repo: "gomod", tag: "sub/v0.1.0", subdir: "sub"},
	{repo: "gomod", tag: "sub/v0.1.0", subdir: "sub", module: "example.com/other"},
	{repo: "gomod", tag: "v1.0.0", subdir: "sub"},
	{repo: "legacy", tag: "v1.0.0"},
	{repo: "legacy", tag: "v1.0.0", module: "example.com/legacy"},
	{repo: "legacy", tag: "v2.0.0", module: "example.com/legacy"},
}

// golden is what golden.json records for a case.
type golden struct {
	Commit    string `json:"commit"`
	TagObject string `json:"tag_object,omitempty"`
	Tree      string `json:"tree"`
	Files     int    `json:"files"`
	Bytes     int64  `json:"bytes"`
	Module    string `json:"module,omitempty"`
	Version   string `json:"version,omitempty"`
	H1        string `json:"h1,omitempty"`
	GoModH1   string `json:"gomod_h1,omitempty"`
	H1Note    string `json:"h1_note,omitempty"`
}

func toGolden(r *Result) golden {
	return golden{r.Commit, r.TagObject, r.Tree, r.Files, r.Bytes, r.Module, r.Version, r.H1, r.GoModH1, r.H1Note}
}

// hashAll hashes every case once, sharing a cache, and returns the results.
var hashAll = sync.OnceValues(func() (map[string]*Result, error) {
	cache, err := os.MkdirTemp("", "vcs-cache-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cache)
	out := map[string]*Result{}
	for _, c := range hashCases {
		res, err := Hash(context.Background(), c.url(), c.tag, Options{CacheDir: cache, Module: c.module, Subdir: c.subdir})
		if err != nil {
			return nil, err
		}
		out[c.name()] = res
	}
	return out, nil
})

func TestHashGolden(t *testing.T) {
	results, err := hashAll()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]golden{}
	for name, r := range results {
		got[name] = toGolden(r)
	}
	if *update {
		data, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run go test ./vcs -update to create it)", err)
	}
	var want map[string]golden
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for _, c := range hashCases {
		if g, w := got[c.name()], want[c.name()]; g != w {
			t.Errorf("Hash(%s) =\n  %+v\nwant\n  %+v", c.name(), g, w)
		}
	}
	if len(want) != len(got) {
		t.Errorf("golden.json has %d cases, the test %d: run go test ./vcs -update", len(want), len(got))
	}
}

// TestT1MatchesGitCLI checks t1 against an independent computation from
// git ls-tree and git cat-file.
func TestT1MatchesGitCLI(t *testing.T) {
	results, err := hashAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range hashCases {
		r := results[c.name()]
		if want := gitT1(t, filepath.Join(fixtures, c.repo), c.tag); r.Tree != want {
			t.Errorf("Hash(%s).Tree = %s, want %s (git CLI)", c.name(), r.Tree, want)
		}
		if want := strings.TrimSpace(string(git(t, filepath.Join(fixtures, c.repo), "rev-parse", c.tag+"^{commit}"))); r.Commit != want {
			t.Errorf("Hash(%s).Commit = %s, want %s", c.name(), r.Commit, want)
		}
	}
}

// TestH1MatchesCreateFromVCS checks h1 against golang.org/x/mod/zip's
// CreateFromVCS, which lists files with git archive, an independent path.
func TestH1MatchesCreateFromVCS(t *testing.T) {
	results, err := hashAll()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, c := range hashCases {
		r := results[c.name()]
		if r.H1 == "" {
			continue
		}
		checked++
		dir := filepath.Join(fixtures, c.repo)
		zipPath := filepath.Join(t.TempDir(), "m.zip")
		f, err := os.Create(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		err = modzip.CreateFromVCS(f, module.Version{Path: r.Module, Version: r.Version}, dir, c.tag, c.subdir)
		f.Close()
		if err != nil {
			t.Fatalf("CreateFromVCS(%s): %v", c.name(), err)
		}
		want, err := dirhash.HashZip(zipPath, dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		if r.H1 != want {
			t.Errorf("Hash(%s).H1 = %s, want %s (zip.CreateFromVCS)", c.name(), r.H1, want)
		}

		gomod := legacyGoMod(r.Module)
		p := "go.mod"
		if c.subdir != "" {
			p = c.subdir + "/go.mod"
		}
		if out, err := gitOutput(dir, "cat-file", "blob", c.tag+":"+p); err == nil {
			gomod = out
		}
		wantMod, _ := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gomod)), nil })
		if r.GoModH1 != wantMod {
			t.Errorf("Hash(%s).GoModH1 = %s, want %s", c.name(), r.GoModH1, wantMod)
		}
	}
	if checked < 5 {
		t.Errorf("only %d cases had an h1", checked)
	}
}

func gitOutput(dir string, args ...string) ([]byte, error) {
	cmd := execGit(dir, args...)
	return cmd.Output()
}

// TestTreeHash checks the general TreeHash, which reads every blob through
// go-git, against Hash.
func TestTreeHash(t *testing.T) {
	results, err := hashAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []hashCase{hashCases[0], hashCases[5]} {
		repo, err := gogit.PlainOpen(filepath.Join(fixtures, c.repo))
		if err != nil {
			t.Fatal(err)
		}
		tree := plumbing.NewHash(strings.TrimSpace(string(git(t, filepath.Join(fixtures, c.repo), "rev-parse", c.tag+"^{tree}"))))
		got, err := TreeHash(context.Background(), repo.Storer, tree, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if want := results[c.name()].Tree; got != want {
			t.Errorf("TreeHash(%s) = %s, want %s", c.name(), got, want)
		}
	}
}

func TestTransports(t *testing.T) {
	results, err := hashAll()
	if err != nil {
		t.Fatal(err)
	}
	hs := newGitServer(t, fixtures, nil)
	urls := map[string]string{
		"local path": filepath.Join(fixtures, "gomod"),
		"http":       hs.URL + "/basic",
	}
	if testing.Short() {
		t.Log("skipping git:// in short mode")
	} else {
		urls["git"] = gitDaemon(t, fixtures) + "/gomod"
	}
	for name, u := range urls {
		t.Run(name, func(t *testing.T) {
			c := hashCases[5] // gomod v1.0.0
			if strings.HasSuffix(u, "/basic") {
				c = hashCases[0] // basic v1.0.0
			}
			want := results[c.name()]
			got, err := Hash(context.Background(), u, c.tag, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Tree != want.Tree || got.Commit != want.Commit || got.TagObject != want.TagObject || got.H1 != want.H1 {
				t.Errorf("Hash(%s) = %+v, want %+v", u, got, want)
			}
		})
	}
}

// TestCacheAvoidsTransfer checks that a second hash of the same tag lists
// refs but fetches no pack, and that a moved tag is noticed.
func TestCacheAvoidsTransfer(t *testing.T) {
	root := t.TempDir()
	repo := copyRepo(t, "basic")
	os.Rename(repo, filepath.Join(root, "basic"))
	repo = filepath.Join(root, "basic")
	hs := newGitServer(t, root, nil)
	cache := t.TempDir()
	ctx := context.Background()
	u := hs.URL + "/basic"

	first, err := Hash(ctx, u, "moving", Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if n := hs.uploads(); n != 1 {
		t.Fatalf("first Hash made %d pack requests, want 1", n)
	}
	second, err := Hash(ctx, u, "moving", Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if n := hs.uploads(); n != 1 {
		t.Errorf("second Hash made %d pack requests in all, want 1 (cached)", n)
	}
	if *second != *first {
		t.Errorf("second Hash = %+v, want %+v", second, first)
	}

	git(t, repo, "tag", "-f", "moving", "next")
	moved, err := Hash(ctx, u, "moving", Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if moved.Commit == first.Commit || moved.Tree == first.Tree {
		t.Errorf("after moving the tag, Hash = %s %s, want a new commit and tree", moved.Commit, moved.Tree)
	}
	if want := gitT1(t, repo, "moving"); moved.Tree != want {
		t.Errorf("after moving the tag, Tree = %s, want %s", moved.Tree, want)
	}
	if n := hs.uploads(); n != 2 {
		t.Errorf("after moving the tag, %d pack requests in all, want 2", n)
	}
}

// TestDamagedCache checks that a damaged cache entry is fetched again.
func TestDamagedCache(t *testing.T) {
	cache := t.TempDir()
	ctx := context.Background()
	u := "file://" + filepath.Join(fixtures, "gomod")
	want, err := Hash(ctx, u, "v1.0.1", Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	entry := entryDir(cache, plumbing.NewHash(want.Commit))
	for _, damage := range []string{"sums", "pack"} {
		t.Run(damage, func(t *testing.T) {
			files, _ := filepath.Glob(filepath.Join(packDir(entry), "pack-*."+damage))
			if len(files) != 1 {
				t.Fatalf("found %v", files)
			}
			data, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			// Flip a byte in every 1 KiB past the header.
			for i := 100; i < len(data); i += 1024 {
				data[i] ^= 0x55
			}
			if err := os.WriteFile(files[0], data, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Hash(ctx, u, "v1.0.1", Options{CacheDir: cache})
			if err != nil {
				t.Fatal(err)
			}
			if *got != *want {
				t.Errorf("Hash after damaging the %s = %+v, want %+v", damage, got, want)
			}
		})
	}
}

func TestConcurrentHash(t *testing.T) {
	results, err := hashAll()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 2; i++ {
		for _, c := range hashCases[:7] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := Hash(context.Background(), c.url(), c.tag, Options{CacheDir: cache, Module: c.module, Subdir: c.subdir})
				if err != nil {
					errs <- err
					return
				}
				if want := results[c.name()]; *got != *want {
					errs <- errors.New("Hash(" + c.name() + ") differs when run concurrently")
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	_, err := Hash(context.Background(), "file://"+filepath.Join(fixtures, "basic"), "v1.0.0", Options{Progress: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); out != "" && (!strings.Contains(out, "objects") || !strings.HasSuffix(out, "\n")) {
		t.Errorf("progress output %q, want object counts and a final newline", out)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	basic := "file://" + filepath.Join(fixtures, "basic")
	hs := newGitServer(t, fixtures, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.HasPrefix(r.URL.Path, "/private/"):
				if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "secret-token" {
					w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
					http.Error(w, "authentication required", http.StatusUnauthorized)
					return
				}
				r.URL.Path = strings.TrimPrefix(r.URL.Path, "/private")
			case strings.HasPrefix(r.URL.Path, "/slow/"):
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				return
			case strings.HasPrefix(r.URL.Path, "/forbidden/"):
				http.Error(w, "\x1b[31mgo away\x1b[0m", http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	auth := func(host string) (string, string, bool) { return "user", "secret-token", true }
	// Limits checked while walking the tree apply to cached objects too:
	// those cases share a warm cache.
	warm := t.TempDir()
	if _, err := Hash(ctx, basic, "v1.0.0", Options{CacheDir: warm}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		repo string
		tag  string
		opts Options
		want error
	}{
		{"unknown local repo", "file://" + filepath.Join(fixtures, "nope"), "v1.0.0", Options{}, ErrRepoNotFound},
		{"unknown http repo", hs.URL + "/nope", "v1.0.0", Options{}, ErrRepoNotFound},
		{"unknown tag", basic, "v9.9.9", Options{}, ErrTagNotFound},
		{"tag of a tree", basic, "treetag", Options{}, ErrNotCommit},
		{"invalid tag", basic, "bad..tag", Options{}, ErrInvalid},
		{"invalid subdir", basic, "v1.0.0", Options{Subdir: "../x"}, ErrInvalid},
		{"auth required", hs.URL + "/private/basic", "v1.0.0", Options{}, ErrAuth},
		{"wrong credentials", hs.URL + "/private/basic", "v1.0.0", Options{HTTPAuth: func(string) (string, string, bool) { return "user", "wrong", true }}, ErrAuth},
		{"forbidden", hs.URL + "/forbidden/basic", "v1.0.0", Options{}, ErrAuth},
		{"timeout", hs.URL + "/slow/basic", "v1.0.0", Options{Timeout: 300 * time.Millisecond}, ErrTimeout},
		{"connection refused", "http://127.0.0.1:1/basic", "v1.0.0", Options{}, ErrNetwork},
		{"unsupported scheme", "ftp://example.com/x", "v1.0.0", Options{}, ErrInvalid},
		{"too many files", basic, "v1.0.0", Options{CacheDir: warm, Limits: Limits{MaxFiles: 10}}, ErrLimit},
		{"too many bytes", basic, "v1.0.0", Options{Limits: Limits{MaxBytes: 1 << 20}}, ErrLimit},
		{"too many bytes in the tree", basic, "v1.0.0", Options{CacheDir: warm, Limits: Limits{MaxBytes: 8 << 20}}, ErrLimit},
		{"too deep", basic, "v1.0.0", Options{CacheDir: warm, Limits: Limits{MaxDepth: 3}}, ErrLimit},
		{"path too long", basic, "v1.0.0", Options{CacheDir: warm, Limits: Limits{MaxPathLen: 12}}, ErrLimit},
		{"too little memory", basic, "v1.0.0", Options{Limits: Limits{MaxMemory: 1 << 20}}, ErrLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Hash(ctx, tt.repo, tt.tag, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Hash(%s, %s) = %+v, %v; want error %v", tt.repo, tt.tag, res, err, tt.want)
			}
			var ve *Error
			if !errors.As(err, &ve) {
				t.Fatalf("Hash(%s, %s) error %T is not a *vcs.Error", tt.repo, tt.tag, err)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, redact(tt.repo)) || !strings.Contains(msg, tt.tag) {
				t.Errorf("error %q does not name the repository and the tag", msg)
			}
			if strings.ContainsAny(msg, "\x1b\n") || strings.Contains(msg, "secret-token") {
				t.Errorf("error %q has control characters or a secret", msg)
			}
		})
	}
	t.Run("with credentials", func(t *testing.T) {
		res, err := Hash(ctx, hs.URL+"/private/basic", "v1.0.0", Options{CacheDir: warm, HTTPAuth: auth})
		if err != nil {
			t.Fatal(err)
		}
		if want := gitT1(t, filepath.Join(fixtures, "basic"), "v1.0.0"); res.Tree != want {
			t.Errorf("Tree = %s, want %s", res.Tree, want)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Hash(ctx, basic, "v1.0.0", Options{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Hash with a canceled context = %v, want context.Canceled", err)
		}
	})
}

func TestRedactedURL(t *testing.T) {
	_, err := Hash(context.Background(), "http://user:hunter2@127.0.0.1:1/x", "v1", Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Hash error = %v, want an error without the password", err)
	}
}
