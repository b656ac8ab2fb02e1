package vcs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// This file computes the h1 hashes go.sum records for <module>@<version>
// and <module>@<version>/go.mod, from the entries of the tag's tree and
// the blob digests already computed for t1.
//
// The go command builds a module zip from `git archive` of the tag (with
// export-ignore and export-subst disabled, see cmd/go/internal/modfetch/
// codehost.ensureGitAttributes), drops directories, strips the module's
// subdirectory, adds the repository root's LICENSE to a subdirectory module
// that has none, and passes the files to golang.org/x/mod/zip.Create. The
// h1 hash is sumdb/dirhash.Hash1 over the files of that zip. Here the same
// file list is given to zip.CheckFiles, which applies the same rules as
// Create (vendor directories by go version, nested modules, symbolic links,
// .hg_archival.txt, file path rules, case-fold collisions, size limits), and
// Hash1 is computed from the SHA-256 digests t1 already has, so no blob is
// read twice.

// A goModule is the Go module found in a tree, and its hashes.
type goModule struct {
	Path    string
	Version string
	H1      string
	GoModH1 string
	Note    string // why H1 was not computed, if it was not
}

// maxGoMod is the largest go.mod or LICENSE a module zip may hold.
const maxGoMod = modzip.MaxGoMod

// moduleHash computes the h1 hashes of the module at subdir of the tree
// whose sorted entries are given. modPath, if set, names the module; it must
// match the module directive of the go.mod, if there is one. A tree that is
// not a Go module returns a zero goModule and no error; a module whose h1
// the go command could not compute returns a goModule with a Note.
func moduleHash(objs *objectStore, entries []entry, tag, modPath, subdir string) (goModule, error) {
	var m goModule
	prefix := ""
	if subdir != "" {
		prefix = subdir + "/"
	}
	find := func(p string) *entry {
		i, ok := slices.BinarySearchFunc(entries, p, func(e entry, p string) int { return strings.Compare(e.path, p) })
		if !ok {
			return nil
		}
		return &entries[i]
	}

	var gomod []byte
	legacy := true
	if e := find(prefix + "go.mod"); e != nil && e.mode != modeGitlink {
		if e.size > maxGoMod {
			m.Note = fmt.Sprintf("%sgo.mod is larger than %d bytes", prefix, maxGoMod)
			return m, nil
		}
		data, _, err := objs.read(e.id, plumbing.BlobObject)
		if err != nil {
			return m, err
		}
		gomod, legacy = data, false
		declared := modfile.ModulePath(gomod)
		switch {
		case declared == "":
			m.Path = modPath
			m.Note = fmt.Sprintf("%sgo.mod has no module directive", prefix)
			return m, nil
		case modPath != "" && declared != modPath:
			m.Path = modPath
			m.Note = fmt.Sprintf("%sgo.mod declares module %s, not %s", prefix, declared, modPath)
			return m, nil
		}
		modPath = declared
	}
	if modPath == "" {
		if subdir != "" {
			m.Note = fmt.Sprintf("no go.mod in %s and no module path given", subdir)
		}
		return m, nil
	}
	m.Path = modPath
	if err := module.CheckPath(modPath); err != nil {
		m.Note = err.Error()
		return m, nil
	}
	if legacy {
		gomod = legacyGoMod(modPath)
	}
	version, note := moduleVersion(tag, subdir, modPath, legacy)
	if note != "" {
		m.Note = note
		return m, nil
	}
	m.Version = version
	h, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gomod)), nil
	})
	if err != nil {
		return m, err
	}
	m.GoModH1 = h

	// The files of the zip, as the go command lists them from git archive.
	var files []modzip.File
	haveLicense := false
	for i := range entries {
		e := &entries[i]
		name, ok := strings.CutPrefix(e.path, prefix)
		if !ok || e.mode == modeGitlink {
			continue // git archive shows submodules as directories
		}
		files = append(files, &zipFile{name: name, e: e, objs: objs})
		if name == "LICENSE" {
			haveLicense = true
		}
	}
	if !haveLicense && subdir != "" {
		// git cat-file blob <rev>:LICENSE, which also reads a symlink's target.
		if e := find("LICENSE"); e != nil && e.mode != modeGitlink {
			files = append(files, &zipFile{name: "LICENSE", e: e, objs: objs, regular: true})
		}
	}
	cf, err := modzip.CheckFiles(files)
	if err != nil {
		m.Note = "the module zip would be invalid: " + firstLine(err.Error())
		return m, nil
	}
	digest := make(map[string][32]byte, len(files))
	for _, f := range files {
		z := f.(*zipFile)
		digest[z.name] = z.e.digest
	}
	m.H1 = hash1(modPath+"@"+version+"/", cf.Valid, digest)
	return m, nil
}

// legacyGoMod is the go.mod the go command synthesizes for a module
// without one (cmd/go/internal/modfetch.LegacyGoMod).
func legacyGoMod(modPath string) []byte {
	return fmt.Appendf(nil, "module %s\n", modfile.AutoQuote(modPath))
}

// moduleVersion returns the module version a tag stands for, or a note
// saying why it stands for none. A module in a subdirectory is tagged
// "<dir>/<version>", where <dir> is the subdirectory, or its parent when
// the subdirectory is the module's major version ("v2"); a module without a
// go.mod at a major version of 2 or more gets "+incompatible".
func moduleVersion(tag, subdir, modPath string, legacy bool) (version, note string) {
	prefix, v := "", tag
	if i := strings.LastIndexByte(tag, '/'); i >= 0 {
		prefix, v = tag[:i], tag[i+1:]
	}
	if !semver.IsValid(v) || semver.Canonical(v) != v {
		return "", fmt.Sprintf("tag %s is not a canonical semantic version (vMAJOR.MINOR.PATCH)", tag)
	}
	_, pathMajor, ok := module.SplitPathVersion(modPath)
	if !ok {
		return "", fmt.Sprintf("malformed module path %q", modPath)
	}
	if subdir != prefix && !(strings.HasPrefix(pathMajor, "/") && subdir == path.Join(prefix, pathMajor[1:])) {
		if prefix == "" {
			return "", fmt.Sprintf("tag %s has no %s/ prefix for a module in %s", tag, subdir, subdir)
		}
		return "", fmt.Sprintf("tag %s is for the module in %s, not %q", tag, prefix, subdir)
	}
	if err := module.CheckPathMajor(v, pathMajor); err != nil {
		if !legacy || pathMajor != "" || semver.Compare(semver.Major(v), "v2") < 0 {
			return "", err.Error()
		}
		v += "+incompatible"
	}
	if err := module.Check(modPath, v); err != nil {
		return "", err.Error()
	}
	return v, ""
}

// hash1 is sumdb/dirhash.Hash1 over files named prefix+name, from their
// SHA-256 digests: base64 of the SHA-256 of the lines "<hex sha256>  <name>\n",
// sorted by name.
func hash1(prefix string, names []string, digest map[string][32]byte) string {
	full := make([]string, len(names))
	for i, n := range names {
		full[i] = prefix + n
	}
	slices.Sort(full)
	h := sha256.New()
	for _, f := range full {
		d := digest[strings.TrimPrefix(f, prefix)]
		fmt.Fprintf(h, "%x  %s\n", d, f)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// zipFile presents a tree entry as a module zip file.
type zipFile struct {
	name    string
	e       *entry
	objs    *objectStore
	regular bool // present a symbolic link as a regular file (LICENSE from the root)
}

func (f *zipFile) Path() string { return f.name }

func (f *zipFile) Lstat() (fs.FileInfo, error) {
	mode := fs.FileMode(0o644)
	switch {
	case f.regular:
	case f.e.mode == modeSymlink:
		mode = fs.ModeSymlink | 0o777
	case f.e.mode == modeExec:
		mode = 0o755
	}
	return fileInfo{name: path.Base(f.name), size: f.e.size, mode: mode}, nil
}

// Open is called by zip.CheckFiles for the root go.mod only.
func (f *zipFile) Open() (io.ReadCloser, error) {
	if f.e.size > maxGoMod {
		return nil, fmt.Errorf("%s is too large", f.name)
	}
	data, _, err := f.objs.read(f.e.id, plumbing.BlobObject)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.size }
func (fi fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi fileInfo) ModTime() time.Time { return time.Time{} }
func (fi fileInfo) IsDir() bool        { return false }
func (fi fileInfo) Sys() any           { return nil }
