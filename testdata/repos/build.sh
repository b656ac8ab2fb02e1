#!/bin/sh
# build.sh DIR: build the fixture repositories used by the vcs tests into DIR
# (which must not exist or be empty). Uses only the git CLI and POSIX tools.
#
# Everything is deterministic: fixed author, committer and dates, no user or
# system git configuration, so commit and tag ids are the same on every
# machine and golden.json can pin them.
#
#   DIR/basic   nested directories, an executable, symbolic links, a submodule
#               (gitlink), empty files, non-UTF-8 and unicode names, names that
#               differ only by case, a 5.8 MB file and a near copy of it (a large
#               delta), similar text files (small deltas).
#               Tags: v1.0.0 (annotated), light (lightweight), nested (an
#               annotated tag of the annotated tag v1.0.0), treetag (names a
#               tree, not a commit), moving (at the first commit; branch "next"
#               holds a second commit the tests move it to).
#   DIR/gomod   a Go module example.com/fixture with vendor/, a nested module
#               in sub/, a LICENSE at the root only, a symbolic link, a file
#               that .gitattributes marks export-ignore.
#               Tags: v0.9.0 (go 1.21: vendor/modules.txt is kept),
#               v1.0.0 (annotated, go 1.24), v1.0.1, sub/v0.1.0 (the nested
#               module), v2.0.0 (invalid: no /v2 suffix), release-1 (not semver).
#   DIR/legacy  a Go package without go.mod. Tags: v1.0.0, v2.0.0 (+incompatible).
set -eu

dir=${1:?usage: build.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null HOME="$dir"
export GIT_AUTHOR_NAME="Fixture Author" GIT_AUTHOR_EMAIL="author@example.com"
export GIT_COMMITTER_NAME="Fixture Committer" GIT_COMMITTER_EMAIL="committer@example.com"
export GIT_AUTHOR_DATE="2024-01-02T03:04:05Z" GIT_COMMITTER_DATE="2024-01-02T03:04:05Z"
export TZ=UTC LC_ALL=C

g() { git -c core.autocrlf=false -c core.symlinks=true -c init.defaultBranch=main -c tag.gpgSign=false -c commit.gpgSign=false -c advice.nestedTag=false "$@"; }

# lines N SEED: N deterministic lines of source-like text.
lines() {
	awk -v n="$1" -v seed="$2" 'BEGIN {
		split("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega return func if else for range", w, " ");
		x = seed;
		for (i = 0; i < n; i++) {
			x = (x * 1103515245 + 12345) % 2147483648; a = w[int(x / 65536) % 16 + 1];
			x = (x * 1103515245 + 12345) % 2147483648; b = w[int(x / 65536) % 16 + 1];
			x = (x * 1103515245 + 12345) % 2147483648;
			printf "%s %s(%d) // %s %s line %d\n", a, b, x % 100000, b, a, i;
		}
	}'
}

# numbered N: N numbered lines of 65 bytes, a large file that is cheap to
# compress and inflate.
numbered() {
	awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "%08d the quick brown fox jumps over the lazy dog, once more.\n", i }'
}

# ---------------------------------------------------------------- basic
r="$dir/basic"
g init -q "$r"
cd "$r"
mkdir -p docs/a/b/c bin src/one src/two empty-dir-file
printf 'top readme\n' > README
printf 'lower-case readme\n' > readme
printf 'deep\n' > docs/a/b/c/deep.txt
printf 'guide\n' > docs/guide.md
printf '#!/bin/sh\necho run\n' > bin/run.sh
chmod 755 bin/run.sh
: > empty.txt
: > empty-dir-file/.keep
ln -s README link-to-readme
ln -s ../../outside/of/the/repo dangling-link
ln -s docs/a linked-dir
printf 'not utf-8\n' > "$(printf 'latin1-\351t\351.txt')"
printf 'unicode\n' > "héllo wörld ✓.txt"
printf 'name with spaces\n' > "a file with spaces"
lines 400 1 > src/one/data.txt
{ lines 400 1; printf 'one more line\n'; } > src/two/data.txt
numbered 90000 > large.bin
{ numbered 90000; printf 'appended\n'; } > large-copy.bin
g add -A
# A submodule entry (gitlink) whose commit is not in this repository.
g update-index --add --cacheinfo 160000,0123456789abcdef0123456789abcdef01234567,third_party/sub
g commit -q -m "basic fixture"
g tag -a v1.0.0 -m "release v1.0.0"
g tag light
g tag moving
g tag -a nested -m "a tag of a tag" v1.0.0
g tag treetag "HEAD^{tree}"
g checkout -q -b next
printf 'second state\n' > README
g commit -q -a -m "second state"
g checkout -q main

# ---------------------------------------------------------------- gomod
r="$dir/gomod"
g init -q "$r"
cd "$r"
mkdir -p vendor/example.com/dep sub pkg/vendor internal
printf 'module example.com/fixture\n\ngo 1.21\n\nrequire example.com/dep v1.0.0\n' > go.mod
printf 'package fixture\n\n// Hello says hello.\nfunc Hello() string { return "hello" }\n' > fixture.go
printf 'Copyright 2024 Fixture Authors.\nPermission is granted.\n' > LICENSE
printf '# example.com/dep v1.0.0\n## explicit\nexample.com/dep\n' > vendor/modules.txt
printf 'package dep\n' > vendor/example.com/dep/dep.go
printf 'module example.com/fixture/sub\n\ngo 1.22\n' > sub/go.mod
printf 'package sub\n' > sub/sub.go
printf 'package vendor\n' > pkg/vendor/vendor.go
printf 'package internal\n' > internal/x.go
g add -A
g commit -q -m "module at go 1.21"
g tag v0.9.0
printf 'module example.com/fixture\n\ngo 1.24\n\nrequire example.com/dep v1.0.0\n' > go.mod
ln -s fixture.go link.go
printf 'ignored.txt export-ignore\n' > .gitattributes
printf 'ignored by git archive unless disabled\n' > ignored.txt
printf 'repo: 0000\n' > .hg_archival.txt
chmod 755 internal/x.go
g add -A
g commit -q -m "module at go 1.24"
g tag -a v1.0.0 -m "v1.0.0"
g tag v1.0.1
g tag sub/v0.1.0
g tag v2.0.0
g tag release-1

# ---------------------------------------------------------------- legacy
r="$dir/legacy"
g init -q "$r"
cd "$r"
printf 'package legacy\n' > legacy.go
printf 'MIT\n' > LICENSE
g add -A
g commit -q -m "legacy package"
g tag v1.0.0
g tag v2.0.0
