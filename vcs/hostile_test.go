package vcs

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// plumb builds repositories object by object with git plumbing, including
// objects no porcelain command would write.
type plumb struct {
	t   *testing.T
	dir string
}

func newPlumb(t *testing.T) *plumb {
	dir := filepath.Join(t.TempDir(), "hostile")
	git(t, filepath.Dir(dir), "init", "-q", dir)
	return &plumb{t, dir}
}

func (p *plumb) blob(content string) string {
	return strings.TrimSpace(string(gitIn(p.t, p.dir, []byte(content), "hash-object", "-w", "--stdin")))
}

// tree writes a raw tree object from entries of "mode name" and hex ids,
// without any of the checks git mktree makes.
func (p *plumb) tree(entries ...string) string {
	var raw bytes.Buffer
	for i := 0; i < len(entries); i += 2 {
		id, err := hex.DecodeString(entries[i+1])
		if err != nil {
			p.t.Fatal(err)
		}
		raw.WriteString(entries[i])
		raw.WriteByte(0)
		raw.Write(id)
	}
	return strings.TrimSpace(string(gitIn(p.t, p.dir, raw.Bytes(), "hash-object", "-w", "-t", "tree", "--literally", "--stdin")))
}

// tag commits tree and tags the commit.
func (p *plumb) tag(name, tree string) {
	commit := strings.TrimSpace(string(gitIn(p.t, p.dir, []byte("hostile\n"), "commit-tree", tree)))
	git(p.t, p.dir, "tag", name, commit)
}

func (p *plumb) hash(tag string, lim Limits) (*Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Hash(ctx, "file://"+p.dir, tag, Options{Limits: lim})
}

func TestHostileTrees(t *testing.T) {
	p := newPlumb(t)
	b := p.blob("x\n")
	p.tag("newline", p.tree("100644 bad\nname", b))
	p.tag("slash", p.tree("100644 a/b", b))
	p.tag("dotdot", p.tree("100644 ..", b))
	p.tag("dot", p.tree("40000 .", p.tree("100644 f", b)))
	p.tag("duplicate", p.tree("100644 a", b, "100644 a", b))
	p.tag("file-and-dir", p.tree("100644 a", b, "100644 a-b", b, "40000 a", p.tree("100644 f", b)))
	p.tag("fifo", p.tree("10644 pipe", b))
	p.tag("nested-newline", p.tree("40000 dir", p.tree("100644 x\ny", b)))

	for _, tag := range []string{"newline", "slash", "dotdot", "dot", "duplicate", "file-and-dir", "fifo", "nested-newline"} {
		t.Run(tag, func(t *testing.T) {
			res, err := p.hash(tag, Limits{})
			if !errors.Is(err, ErrHostile) {
				t.Fatalf("Hash(%s) = %+v, %v; want ErrHostile", tag, res, err)
			}
			t.Log(err)
		})
	}
}

func TestHostileLimits(t *testing.T) {
	p := newPlumb(t)
	b := p.blob(strings.Repeat("x", 99) + "\n")

	// A tree bomb: 6 levels of 100 entries naming the same subtree stand
	// for 10^12 files of 100 bytes in a pack of a few objects.
	tree := p.tree("100644 f", b)
	for range 6 {
		var entries []string
		for i := range 100 {
			entries = append(entries, fmt.Sprintf("40000 d%02d", i), tree)
		}
		tree = p.tree(entries...)
	}
	p.tag("bomb", tree)

	// A chain of 300 directories.
	deep := p.tree("100644 f", b)
	for range 300 {
		deep = p.tree("40000 d", deep)
	}
	p.tag("deep", deep)

	// A long path.
	long := p.tree("100644 "+strings.Repeat("n", 250), b)
	for range 20 {
		long = p.tree("40000 "+strings.Repeat("d", 250), long)
	}
	p.tag("long", long)

	tests := []struct {
		tag string
		lim Limits
	}{
		{"bomb", Limits{MaxFiles: 100_000}},
		{"bomb", Limits{MaxBytes: 1 << 20}},
		{"deep", Limits{}},
		{"long", Limits{}},
		{"deep", Limits{MaxPathLen: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			start := time.Now()
			res, err := p.hash(tt.tag, tt.lim)
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("Hash(%s) = %+v, %v; want ErrLimit", tt.tag, res, err)
			}
			t.Logf("%v (%v)", err, time.Since(start))
		})
	}

	// Within generous limits the same shapes hash fine.
	if _, err := p.hash("deep", Limits{MaxDepth: 400, MaxPathLen: 1000}); err != nil {
		t.Errorf("Hash(deep) with MaxDepth 400 = %v, want success", err)
	}
}

// TestLargeBlobStreams checks that a blob larger than the memory limit
// hashes when it is not deltified: non-delta blobs are streamed.
func TestLargeBlobStreams(t *testing.T) {
	p := newPlumb(t)
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 4<<20/17) // ~4 MiB
	b := p.blob(string(big))
	p.tag("big", p.tree("100644 big", b))
	res, err := p.hash("big", Limits{MaxMemory: 1 << 20})
	if err != nil {
		t.Fatalf("Hash(big) with MaxMemory 1 MiB = %v, want success", err)
	}
	if want := gitT1(t, p.dir, "big"); res.Tree != want {
		t.Errorf("Hash(big).Tree = %s, want %s", res.Tree, want)
	}
	if res.Bytes != int64(len(big)) {
		t.Errorf("Hash(big).Bytes = %d, want %d", res.Bytes, len(big))
	}
}

func TestHashWritesOnlyCache(t *testing.T) {
	// Paths that would escape a checkout are only hashed: nothing but the
	// cache directory is written.
	p := newPlumb(t)
	b := p.blob("x\n")
	p.tag("escape", p.tree("40000 .git", p.tree("100644 config", b), "120000 abs", p.blob("/etc/passwd"), "100644 ..x", b))
	cache := t.TempDir()
	work := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(work); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	res, err := Hash(context.Background(), "file://"+p.dir, "escape", Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if want := gitT1(t, p.dir, "escape"); res.Tree != want {
		t.Errorf("Tree = %s, want %s", res.Tree, want)
	}
	if des, _ := os.ReadDir(work); len(des) != 0 {
		t.Errorf("Hash wrote %v into the working directory", des)
	}
	filepath.Walk(cache, func(path string, info os.FileInfo, err error) error {
		rel, _ := filepath.Rel(cache, path)
		if info != nil && !info.IsDir() && !strings.HasPrefix(rel, "git/") {
			t.Errorf("unexpected file %s in the cache", rel)
		}
		return nil
	})
}
