package vcs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
	"golang.org/x/mod/sumdb/dirhash"
)

func rawTree(entries ...string) []byte {
	var b bytes.Buffer
	for i := 0; i < len(entries); i += 2 {
		b.WriteString(entries[i])
		b.WriteByte(0)
		h := plumbing.NewHash(entries[i+1])
		b.Write(h[:])
	}
	return b.Bytes()
}

const id1 = "0123456789abcdef0123456789abcdef01234567"

func TestParseTree(t *testing.T) {
	type ent struct {
		mode uint32
		name string
	}
	tests := []struct {
		name string
		data []byte
		want []ent
		ok   bool
	}{
		{"empty", nil, nil, true},
		{"file", rawTree("100644 a", id1), []ent{{0o100644, "a"}}, true},
		{"several", rawTree("100755 x", id1, "40000 d", id1, "160000 s", id1), []ent{{0o100755, "x"}, {0o40000, "d"}, {0o160000, "s"}}, true},
		{"zero padded mode", rawTree("040000 d", id1), []ent{{0o40000, "d"}}, true},
		{"unicode and spaces", rawTree("100644 é a", id1), []ent{{0o100644, "é a"}}, true},
		{"empty name", rawTree("100644 ", id1), nil, false},
		{"slash", rawTree("100644 a/b", id1), nil, false},
		{"dot", rawTree("100644 .", id1), nil, false},
		{"dotdot", rawTree("100644 ..", id1), nil, false},
		{"bad mode digit", rawTree("100648 a", id1), nil, false},
		{"no mode", rawTree(" a", id1), nil, false},
		{"long mode", rawTree("10064444 a", id1), nil, false},
		{"truncated id", rawTree("100644 a", id1)[:20], nil, false},
		{"no nul", []byte("100644 abc"), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []ent
			err := parseTree(tt.data, func(mode uint32, name []byte, id plumbing.Hash) error {
				got = append(got, ent{mode, string(name)})
				return nil
			})
			if (err == nil) != tt.ok {
				t.Fatalf("parseTree(%q) error = %v, want ok %v", tt.data, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrHostile) {
				t.Errorf("parseTree(%q) error = %v, want ErrHostile", tt.data, err)
			}
			if tt.ok && !slices.Equal(got, tt.want) {
				t.Errorf("parseTree(%q) = %v, want %v", tt.data, got, tt.want)
			}
		})
	}
}

func TestCanonMode(t *testing.T) {
	tests := []struct {
		in, want uint32
		ok       bool
	}{
		{0o100644, modeFile, true},
		{0o100755, modeExec, true},
		{0o100664, modeFile, true}, // old git wrote group-writable files
		{0o100600, modeFile, true},
		{0o100700, modeExec, true},
		{0o120000, modeSymlink, true},
		{0o120777, modeSymlink, true},
		{0o040000, modeTree, true},
		{0o160000, modeGitlink, true},
		{0o010644, 0, false},
		{0o000644, 0, false},
		{0o140000, 0, false},
	}
	for _, tt := range tests {
		got, err := canonMode(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("canonMode(%o) = %o, %v; want %o, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseTagTarget(t *testing.T) {
	tests := []struct {
		data string
		id   string
		typ  plumbing.ObjectType
		ok   bool
	}{
		{"object " + id1 + "\ntype commit\ntag v1\ntagger A <a@b> 0 +0000\n\nmsg\n", id1, plumbing.CommitObject, true},
		{"object " + id1 + "\ntype tag\n\n", id1, plumbing.TagObject, true},
		{"object " + id1 + "\ntype tree\n", id1, plumbing.TreeObject, true},
		{"type commit\nobject " + id1 + "\n", id1, plumbing.CommitObject, true},
		{"object " + id1 + "\n", "", 0, false},
		{"object " + strings.ToUpper(id1) + "\ntype commit\n", "", 0, false},
		{"object 0123\ntype commit\n", "", 0, false},
		{"object " + id1 + "\ntype ofs-delta\n", "", 0, false},
		{"object " + id1 + "\ntype bogus\n", "", 0, false},
		{"\nobject " + id1 + "\ntype commit\n", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		id, typ, err := parseTagTarget([]byte(tt.data))
		if (err == nil) != tt.ok {
			t.Errorf("parseTagTarget(%q) error = %v, want ok %v", tt.data, err, tt.ok)
			continue
		}
		if tt.ok && (id.String() != tt.id || typ != tt.typ) {
			t.Errorf("parseTagTarget(%q) = %s %s, want %s %s", tt.data, id, typ, tt.id, tt.typ)
		}
	}
}

func TestParseCommitTree(t *testing.T) {
	tests := []struct {
		data string
		ok   bool
	}{
		{"tree " + id1 + "\nparent " + id1 + "\nauthor A <a@b> 0 +0000\n\nmsg", true},
		{"tree " + id1 + "\n", true},
		{"tree " + id1, false},
		{"parent " + id1 + "\ntree " + id1 + "\n", false},
		{"tree " + id1[:39] + "\n", false},
		{"", false},
	}
	for _, tt := range tests {
		id, err := parseCommitTree([]byte(tt.data))
		if (err == nil) != tt.ok || (tt.ok && id.String() != id1) {
			t.Errorf("parseCommitTree(%q) = %s, %v; want ok %v", tt.data, id, err, tt.ok)
		}
	}
}

func TestSums(t *testing.T) {
	var sums []blobSum
	for i := range 50 {
		s := blobSum{size: int64(i * 1000)}
		s.id = objectID(plumbing.BlobObject, []byte(fmt.Sprint(i)))
		s.digest = sha256.Sum256([]byte(fmt.Sprint(i)))
		sums = append(sums, s)
	}
	slices.SortFunc(sums, func(a, b blobSum) int { return bytes.Compare(a.id[:], b.id[:]) })
	data := encodeSums(sums)
	tab, err := parseSums(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sums {
		d, n, ok := tab.lookup(s.id)
		if !ok || d != s.digest || n != s.size {
			t.Errorf("lookup(%s) = %x, %d, %v; want %x, %d", s.id, d, n, ok, s.digest, s.size)
		}
	}
	if _, _, ok := tab.lookup(plumbing.NewHash(id1)); ok {
		t.Errorf("lookup(%s) found an absent id", id1)
	}
	bad := [][]byte{
		nil,
		data[:len(data)-1],
		append([]byte("x"), data[1:]...),
		encodeSums([]blobSum{sums[1], sums[0]}), // unsorted
		encodeSums([]blobSum{sums[0], sums[0]}), // duplicate
	}
	flipped := bytes.Clone(data)
	flipped[len(sumsMagic)+5] ^= 1
	bad = append(bad, flipped)
	for i, b := range bad {
		if _, err := parseSums(b); err == nil {
			t.Errorf("parseSums(bad[%d]) = nil error, want an error", i)
		}
	}
}

func TestHash1MatchesDirhash(t *testing.T) {
	files := map[string]string{"go.mod": "module x\n", "a/b.go": "package b\n", "LICENSE": "", "z": "zzz", "A": "upper"}
	digest := map[string][32]byte{}
	var names []string
	for n, c := range files {
		names = append(names, n)
		digest[n] = sha256.Sum256([]byte(c))
	}
	prefix := "example.com/x@v1.0.0/"
	var full []string
	for _, n := range names {
		full = append(full, prefix+n)
	}
	want, err := dirhash.Hash1(full, func(name string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(files[strings.TrimPrefix(name, prefix)])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := hash1(prefix, names, digest); got != want {
		t.Errorf("hash1 = %s, want %s (dirhash.Hash1)", got, want)
	}
}

func TestModuleVersion(t *testing.T) {
	tests := []struct {
		tag, subdir, path string
		legacy            bool
		want              string // "" means a note
	}{
		{"v1.2.3", "", "example.com/m", false, "v1.2.3"},
		{"v0.0.1-rc.1", "", "example.com/m", false, "v0.0.1-rc.1"},
		{"v1.2", "", "example.com/m", false, ""},
		{"v1.2.3+meta", "", "example.com/m", false, ""},
		{"1.2.3", "", "example.com/m", false, ""},
		{"release", "", "example.com/m", false, ""},
		{"v2.0.0", "", "example.com/m", false, ""},
		{"v2.0.0", "", "example.com/m", true, "v2.0.0+incompatible"},
		{"v2.0.0", "", "example.com/m/v2", false, "v2.0.0"},
		{"v1.0.0", "", "example.com/m/v2", false, ""},
		{"v2.0.0", "v2", "example.com/m/v2", false, "v2.0.0"},
		{"sub/v0.1.0", "sub", "example.com/m/sub", false, "v0.1.0"},
		{"sub/v0.1.0", "", "example.com/m", false, ""},
		{"v0.1.0", "sub", "example.com/m/sub", false, ""},
		{"other/v0.1.0", "sub", "example.com/m/sub", false, ""},
		{"client/v3.5.0", "client/v3", "example.com/m/client/v3", false, "v3.5.0"},
		{"client/v3/v3.5.0", "client/v3", "example.com/m/client/v3", false, "v3.5.0"},
		{"v1.0.0", "", "gopkg.in/yaml.v1", false, "v1.0.0"},
		{"v2.0.0", "", "gopkg.in/yaml.v1", false, ""},
	}
	for _, tt := range tests {
		got, note := moduleVersion(tt.tag, tt.subdir, tt.path, tt.legacy)
		if got != tt.want || (got == "") == (note == "") {
			t.Errorf("moduleVersion(%q, %q, %q, %v) = %q, %q; want %q", tt.tag, tt.subdir, tt.path, tt.legacy, got, note, tt.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Op: "fetch", Repo: "https://example.com/r", Tag: "v1", Kind: ErrAuth,
		Err: errors.New("authentication required: authentication required\x1b[31m\nsecond line")}
	want := "vcs: fetch https://example.com/r tag v1: authentication failed: authentication required: authentication required[31m second line"
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, ErrAuth) {
		t.Errorf("errors.Is(%v, ErrAuth) = false", e)
	}
	for in, want := range map[string]string{
		"https://u:pw@h/r": "https://u:xxxxx@h/r",
		"https://u@h/r":    "https://u@h/r",
		"git@h:r":          "git@h:r",
		"/a/b":             "/a/b",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// testPack returns a small pack holding a tree, blobs and a delta, made by
// go-git's encoder.
func testPack(t testing.TB) []byte {
	st := memory.NewStorage()
	var ids []plumbing.Hash
	base := strings.Repeat("line of text that repeats\n", 200)
	for _, c := range []string{base, base + "one more\n", "small", ""} {
		o := st.NewEncodedObject()
		o.SetType(plumbing.BlobObject)
		w, _ := o.Writer()
		w.Write([]byte(c))
		w.Close()
		id, err := st.SetEncodedObject(o)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	tree := rawTree("100644 a", ids[0].String(), "100644 b", ids[1].String(), "100644 c", ids[2].String(), "100644 d", ids[3].String())
	o := st.NewEncodedObject()
	o.SetType(plumbing.TreeObject)
	w, _ := o.Writer()
	w.Write(tree)
	w.Close()
	tid, _ := st.SetEncodedObject(o)
	ids = append(ids, tid)
	var buf bytes.Buffer
	if _, err := packfile.NewEncoder(&buf, st, false).Encode(ids, 10); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestIndexPack(t *testing.T) {
	pack := testPack(t)
	lim := DefaultLimits()
	dir := t.TempDir()
	res, err := indexPack(context.Background(), bytes.NewReader(pack), dir, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.objects != 5 || res.blobs != 4 {
		t.Errorf("indexPack = %+v, want 5 objects, 4 blobs", res)
	}
	checkIndexed(t, dir)

	broken := map[string]struct {
		data []byte
		want error
	}{
		"truncated":     {pack[:len(pack)-30], ErrNetwork},
		"no trailer":    {pack[:len(pack)-20], ErrNetwork},
		"bad signature": {append([]byte("KCAP"), pack[4:]...), ErrHostile},
		"bad checksum":  {append(bytes.Clone(pack[:len(pack)-1]), pack[len(pack)-1]^1), ErrHostile},
		"empty":         {nil, ErrNetwork},
	}
	for name, b := range broken {
		_, err := indexPack(context.Background(), bytes.NewReader(b.data), t.TempDir(), lim, nil)
		if !errors.Is(err, b.want) {
			t.Errorf("indexPack(%s) = %v, want %v", name, err, b.want)
		}
	}
	small := lim
	small.MaxBytes = 100
	if _, err := indexPack(context.Background(), bytes.NewReader(pack), t.TempDir(), small, nil); !errors.Is(err, ErrLimit) {
		t.Errorf("indexPack with MaxBytes 100 = %v, want ErrLimit", err)
	}
}

// checkIndexed reads every object of the pack in dir through go-git and
// checks it against its id and, for blobs, the .sums file.
func checkIndexed(t testing.TB, dir string) int {
	t.Helper()
	base := filepath.Dir(filepath.Dir(dir))
	if filepath.Base(dir) != "pack" {
		// indexPack wrote into a bare directory: give go-git its layout.
		base = t.TempDir()
		pd := filepath.Join(base, "objects", "pack")
		os.MkdirAll(pd, 0o755)
		des, _ := os.ReadDir(dir)
		for _, de := range des {
			os.Rename(filepath.Join(dir, de.Name()), filepath.Join(pd, de.Name()))
		}
	}
	st := filesystem.NewStorage(osfs.New(base), cache.NewObjectLRUDefault())
	defer st.Close()
	_, sums, err := openEntry(base)
	if err != nil {
		t.Fatal(err)
	}
	iter, err := st.IterEncodedObjects(plumbing.AnyObject)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = iter.ForEach(func(o plumbing.EncodedObject) error {
		n++
		r, err := o.Reader()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return err
		}
		if got := objectID(o.Type(), data); got != o.Hash() {
			t.Errorf("object %s hashes to %s", o.Hash(), got)
		}
		if o.Type() == plumbing.BlobObject {
			d, size, ok := sums.lookup(o.Hash())
			if !ok || d != sha256.Sum256(data) || size != int64(len(data)) {
				t.Errorf("sums for blob %s = %x %d %v, want %x %d", o.Hash(), d, size, ok, sha256.Sum256(data), len(data))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func FuzzParseTree(f *testing.F) {
	f.Add(rawTree("100644 a", id1, "40000 d", id1))
	f.Add(rawTree("160000 s", id1))
	f.Add([]byte("100644 a\x00short"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := parseTree(data, func(mode uint32, name []byte, id plumbing.Hash) error {
			n++
			if len(name) == 0 || bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0 {
				t.Fatalf("parseTree accepted name %q", name)
			}
			return nil
		})
		if err == nil && n*22 > len(data) {
			t.Fatalf("parseTree found %d entries in %d bytes", n, len(data))
		}
		if err != nil && !errors.Is(err, ErrHostile) {
			t.Fatalf("parseTree error %v is not ErrHostile", err)
		}
	})
}

func FuzzParseTagTarget(f *testing.F) {
	f.Add([]byte("object " + id1 + "\ntype commit\ntag v1\n\nmsg\n"))
	f.Add([]byte("tree " + id1 + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if id, typ, err := parseTagTarget(data); err == nil {
			if !bytes.Contains(data, []byte(id.String())) || !typ.Valid() {
				t.Fatalf("parseTagTarget(%q) = %s %s", data, id, typ)
			}
		}
		if id, err := parseCommitTree(data); err == nil && !bytes.HasPrefix(data, []byte("tree "+id.String()+"\n")) {
			t.Fatalf("parseCommitTree(%q) = %s", data, id)
		}
	})
}

func FuzzParseSums(f *testing.F) {
	f.Add(encodeSums(nil))
	f.Add(encodeSums([]blobSum{{id: plumbing.NewHash(id1), size: 3}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := parseSums(data)
		if err != nil {
			return
		}
		for i := range tab.len() {
			var id plumbing.Hash
			copy(id[:], tab.recs[i*sumsRecLen:])
			if _, _, ok := tab.lookup(id); !ok {
				t.Fatalf("lookup(%s) failed for a listed id", id)
			}
		}
	})
}

// FuzzIndexPack feeds arbitrary bytes to the pack indexer: it must fail
// cleanly or write a pack whose every object matches its id.
func FuzzIndexPack(f *testing.F) {
	f.Add(testPack(f))
	f.Add([]byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxFiles: 1000, MaxBytes: 1 << 20, MaxDepth: 10, MaxPathLen: 100, MaxMemory: 1 << 20}
		dir := filepath.Join(t.TempDir(), "objects", "pack")
		os.MkdirAll(dir, 0o755)
		res, err := indexPack(context.Background(), bytes.NewReader(data), dir, lim, nil)
		if err != nil {
			if !errors.Is(err, ErrHostile) && !errors.Is(err, ErrNetwork) && !errors.Is(err, ErrLimit) {
				t.Fatalf("indexPack error %v has no kind", err)
			}
			return
		}
		if n := checkIndexed(t, dir); n > res.objects {
			t.Fatalf("go-git reads %d objects, indexPack indexed %d", n, res.objects)
		}
	})
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		url, proto, host string
		auth             bool
	}{
		{"https://GitHub.com/a/b", "https", "github.com", true},
		{"http://example.com/a/b", "http", "example.com", false},
		{"http://127.0.0.1:8080/a", "http", "127.0.0.1", true},
		{"ssh://git@example.com:2222/a/b.git", "ssh", "example.com", false},
		{"git@example.com:a/b.git", "ssh", "example.com", false},
		{"git://example.com/a/b", "git", "example.com", false},
		{"file:///srv/a.git", "file", "", false},
		{"/srv/a.git", "file", "", false},
	}
	var asked []string
	opts := &Options{HTTPAuth: func(host string) (string, string, bool) {
		asked = append(asked, host)
		return "u", "p", true
	}}
	for _, tt := range tests {
		asked = nil
		ep, _, auth, err := endpoint(tt.url, opts)
		if err != nil {
			t.Errorf("endpoint(%q) = %v", tt.url, err)
			continue
		}
		if ep.Protocol != tt.proto || !strings.EqualFold(ep.Host, tt.host) {
			t.Errorf("endpoint(%q) = %s %s, want %s %s", tt.url, ep.Protocol, ep.Host, tt.proto, tt.host)
		}
		if (auth != nil) != tt.auth || (tt.auth && (len(asked) != 1 || asked[0] != strings.ToLower(tt.host))) {
			t.Errorf("endpoint(%q) auth = %v (asked %v), want auth %v", tt.url, auth, asked, tt.auth)
		}
	}
	for _, bad := range []string{"", "-oProxyCommand=x", "ftp://h/x", "https://h/a\nb"} {
		if _, _, _, err := endpoint(bad, opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("endpoint(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "fetching x v1")
	p.last = time.Time{} // print at once
	p.objects(10)
	p.received(3 << 20)
	p.object()
	p.deltas(4)
	p.delta()
	p.done()
	out := buf.String()
	for _, want := range []string{"\rfetching x v1: 3.0 MiB, 1/10 objects", "1/4 deltas", "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output %q does not contain %q", out, want)
		}
	}
	var nilp *progress
	nilp.object() // a nil progress reports nothing
	nilp.done()
}
