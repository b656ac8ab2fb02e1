#!/bin/sh
# build.sh DIR builds the fixture repositories the vcs tests fetch and hash.
#
# Every repository is built with the git CLI from fixed contents, names and
# dates, so commit and tag ids are the same on every machine and the golden
# hashes in golden.json stay valid. Nothing here is committed as a .git
# directory; tests run this script into a temporary directory.
#
#   DIR/tree     odd trees: nested directories, an executable, symlinks, a
#                gitlink, empty files, non-UTF-8 and unicode names, names that
#                differ only by case, a 5 MB file; annotated, lightweight,
#                nested and moving tags, a tag on a tree, an empty tree
#   DIR/gomod    a Go module: vendor/, a nested module, a subdirectory module,
#                a major-version subdirectory, LICENSE, .gitattributes
#   DIR/legacy   a module without go.mod (v1 and +incompatible v2 tags)
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
mkdir -p "$1"
OUT=$(cd "$1" && pwd)

# Isolate from the user's configuration and fix every id-relevant input.
export GIT_CONFIG_NOSYSTEM=1
export GIT_CONFIG_GLOBAL=/dev/null
export HOME="$OUT"
export GIT_AUTHOR_NAME="Fixture Author" GIT_AUTHOR_EMAIL="author@example.com"
export GIT_COMMITTER_NAME="Fixture Committer" GIT_COMMITTER_EMAIL="committer@example.com"
export TZ=UTC LC_ALL=C
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE

# at N: set both dates to N seconds after 2024-01-01T00:00:00Z.
at() {
	export GIT_AUTHOR_DATE="$((1704067200 + $1)) +0000"
	export GIT_COMMITTER_DATE="$GIT_AUTHOR_DATE"
}

newrepo() {
	rm -rf "$OUT/$1"
	git init -q -b main "$OUT/$1"
	cd "$OUT/$1"
	git config core.autocrlf false
	git config core.filemode true
	git config core.symlinks true
	git config advice.nestedTag false
	git config gc.auto 0
	git config core.safecrlf false
}

# bigfile N: N lines of deterministic pseudo-random text (two small LCGs,
# exact in any awk's double arithmetic).
bigfile() {
	awk -v n="$1" 'BEGIN {
		a = 1; b = 7
		for (i = 0; i < n; i++) {
			a = (a * 75 + 74) % 65537
			b = (b * 171) % 30269
			printf "%06d %05x %04x the quick brown fox %d jumps over %d\n", i, a, b, a % 97, b % 89
		}
	}'
}

# --- tree -----------------------------------------------------------------
newrepo tree
at 0
mkdir -p a/b/c bin dir unicodé
printf 'deep\n' >a/b/c/d.txt
printf 'middle\n' >a/b/m.txt
printf '#!/bin/sh\necho run\n' >bin/run.sh
chmod 755 bin/run.sh
: >empty.txt
: >dir/empty
printf 'upper\n' >README
printf 'lower\n' >readme
printf 'latin-1 name\n' >"$(printf 'latin1-\351.txt')"
printf 'nfc\n' >"$(printf 'caf\303\251.txt')"
printf 'nfd\n' >"$(printf 'cafe\314\201.txt')"
printf 'japanese\n' >"unicodé/$(printf '\346\227\245\346\234\254.txt')"
printf 'with space\n' >"name with spaces.txt"
ln -s a/b/c/d.txt link
ln -s ../../../etc/passwd dangling
bigfile 100000 >big.txt
git add -A
# A submodule entry (gitlink) without .gitmodules: hashed as its commit id,
# never fetched.
git update-index --add --cacheinfo 160000,0123456789abcdef0123456789abcdef01234567,sub/module
git commit -q -m "first"
git tag -a -m "release 1.0.0" v1.0.0
git tag v1.0.0-light
git tag -a -m "a tag of a tag" v1.0.0-nested v1.0.0
git tag moving
git tag treetag "HEAD^{tree}"

at 100
printf 'second version\n' >a/b/m.txt
rm -f readme
chmod 644 bin/run.sh
git add -A
git commit -q -m "second"
git tag -a -m "release 2.0.0" v2.0.0

at 200
empty=$(git mktree </dev/null)
c=$(git commit-tree -m "empty tree" "$empty")
git tag empty "$c"

# --- gomod ----------------------------------------------------------------
newrepo gomod
at 1000
mkdir -p vendor/example.org/dep pkg/vendor/foo sub testdata docs
cat >go.mod <<'EOF'
module example.com/fixture

go 1.22
EOF
cat >main.go <<'EOF'
package main

import _ "example.org/dep"

func main() {}
EOF
printf 'Fixture license: do what you like.\n' >LICENSE
printf '# fixture\n' >README.md
printf '# example.org/dep v1.0.0\n## explicit\nexample.org/dep\n' >vendor/modules.txt
printf 'package dep\n' >vendor/example.org/dep/dep.go
printf 'top-level vendor file\n' >vendor/README
printf 'package vendor\n' >pkg/vendor/vendor.go
printf 'package foo\n' >pkg/vendor/foo/foo.go
cat >sub/go.mod <<'EOF'
module example.com/fixture/sub

go 1.22
EOF
printf 'package sub\n' >sub/sub.go
ln -s main.go link.go
printf 'repo: 0000\n' >.hg_archival.txt
printf '#!/bin/sh\nexit 0\n' >script.sh
chmod 755 script.sh
printf 'testdata/ignored.txt export-ignore\nversion.go export-subst\n' >.gitattributes
printf 'ignored by git archive, not by the go command\n' >testdata/ignored.txt
printf 'package main\n\nconst commit = "$Format:%%H$"\n' >version.go
: >docs/empty.txt
printf 'unicode name\n' >"docs/café.md"
git add -A
git commit -q -m "module v1.0.0"
git tag -a -m "v1.0.0" v1.0.0
git tag sub/v0.1.0

at 1100
cat >go.mod <<'EOF'
module example.com/fixture

go 1.24
EOF
mkdir -p v2
cat >v2/go.mod <<'EOF'
module example.com/fixture/v2

go 1.24
EOF
printf 'package fixture\n' >v2/v2.go
printf 'v2 license\n' >v2/LICENSE
git add -A
git commit -q -m "module v1.1.0, v2 in a subdirectory"
git tag v1.1.0
git tag -a -m "v2.0.0" v2.0.0

at 1200
printf '*.txt eol=crlf\n' >>.gitattributes
printf 'line one\nline two\n' >notes.txt
git add -A
git commit -q -m "content conversion attributes"
git tag v1.2.0

at 1300
git rm -q notes.txt
printf 'testdata/ignored.txt export-ignore\nversion.go export-subst\n' >.gitattributes
printf 'x\n' >Readme.md
git add -A
git commit -q -m "case-insensitive collision"
git tag v1.3.0

# --- legacy ---------------------------------------------------------------
newrepo legacy
at 2000
printf 'package legacy\n' >legacy.go
printf 'legacy license\n' >LICENSE
git add -A
git commit -q -m "legacy v1"
git tag v1.0.0
at 2100
printf 'package legacy // v2\n' >legacy.go
git add -A
git commit -q -m "legacy v2"
git tag v2.3.0
