package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// corruptFixture builds a closed store of 24 blocks of 10 records, whose
// key index's tail holds records 200 on, and returns its file's bytes and
// chain.
func corruptFixture(t *testing.T) ([]byte, *ledgertest.Chain) {
	t.Helper()
	s := openTemp(t, withKeyMerge(50))
	c := buildChain(t, s, 24, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path() + "-wal"); err == nil {
		t.Fatalf("Close left a WAL file")
	}
	data, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	return data, c
}

// editSQL runs statements on the store file with a plain connection.
func editSQL(t testing.TB, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// editEntry rewrites log entry idx in its chunks row: edit is given the
// entry's bytes and the stored hashes it adds, and returns new ones.
func editEntry(t testing.TB, path string, idx int64, edit func(data, hashes []byte) ([]byte, []byte)) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var first, height, firstHash int64
	var hashes, data []byte
	if err := db.QueryRow("SELECT "+chunkColumns+" FROM chunks WHERE first <= ? ORDER BY first DESC LIMIT 1", idx).Scan(&first, &height, &firstHash, &hashes, &data); err != nil {
		t.Fatal(err)
	}
	var c chunkRow[[]byte]
	if err := c.split(first, height, firstHash, hashes, data); err != nil || idx >= c.end() {
		t.Fatalf("entry %d: row at %d: %v", idx, first, err)
	}
	var nd, nh []byte
	for i, e := range c.entries {
		j := first + int64(i)
		hs := c.hashesOf(j, j+1)
		if j == idx {
			e, hs = edit(bytes.Clone(e), bytes.Clone(hs))
		}
		nd = appendChunkEntry(nd, e)
		nh = append(nh, hs...)
	}
	if _, err := db.Exec("UPDATE chunks SET hashes = ?, data = ? WHERE first = ?", nh, nd, first); err != nil {
		t.Fatal(err)
	}
}

// sqlEdit returns an edit of a store file that runs stmts.
func sqlEdit(t testing.TB, stmts ...string) func(path string) {
	return func(path string) { editSQL(t, path, stmts...) }
}

// editHashes changes the stored hashes entry idx adds, and cuts them to
// size bytes unless size is 0.
func editHashes(t *testing.T, path string, idx int64, edit func([]byte), size int) {
	t.Helper()
	editEntry(t, path, idx, func(data, hs []byte) ([]byte, []byte) {
		edit(hs)
		if size > 0 {
			hs = hs[:size]
		}
		return data, hs
	})
}

// changeCommit changes the commit line of the record at idx.
func changeCommit(t *testing.T, path string, idx int64) {
	t.Helper()
	editEntry(t, path, idx, func(data, hs []byte) ([]byte, []byte) {
		return bytes.Replace(data, []byte("commit "), []byte("commit f"), 1), hs
	})
}

// chunkOf is a condition on chunks rows: the row holding entry idx.
func chunkOf(idx int) string {
	return fmt.Sprintf("first = (SELECT first FROM chunks WHERE first <= %d ORDER BY first DESC LIMIT 1)", idx)
}

// flipInHeader changes one digit of the time line of the header at height.
func flipInHeader(t *testing.T, path string, height int, fixHash bool) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var hdr []byte
	if err := db.QueryRow("SELECT header FROM blocks WHERE height = ?", height).Scan(&hdr); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(hdr, []byte("\ntime ")) + len("\ntime ") + 5
	hdr[i] = '0' + (hdr[i]-'0'+1)%10
	h, err := ledger.ParseHeader(hdr)
	if err != nil {
		t.Fatal(err)
	}
	hash := h.Hash()
	q := "UPDATE blocks SET header = ? WHERE height = ?"
	args := []any{hdr, height}
	if fixHash {
		q = "UPDATE blocks SET header = ?, hash = ? WHERE height = ?"
		args = []any{hdr, hash[:], height}
	}
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCorrupt(t *testing.T) {
	ctx := context.Background()
	good, c := corruptFixture(t)
	head := int(c.Head().Header.Height) // 24; records 0..239
	rng := rand.New(rand.NewPCG(3, 3))
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	// The top stored hash of the largest complete subtree (records 0..127)
	// is on the path of the head's log root.
	_, top := hashSlot(ledger.StoredHashCount(128) - 1)

	for _, tc := range []struct {
		name  string
		file  []byte                   // the file to open (default: good)
		edit  func(path string)        // applied to it before Open
		want  string                   // in the error
		audit func(*testing.T, string) // when Open is to succeed: Audit must fail there
	}{
		{name: "garbage", file: garbage, want: "not a database"},
		{name: "text file", file: []byte("this is not a ledger\n"), want: "not a database"},
		{name: "truncated", file: good[:len(good)*3/5], want: "malformed"},
		{name: "truncated to a page", file: good[:4096], want: ""},
		{name: "other application", edit: func(p string) {
			os.Remove(p)
			editSQL(t, p, "CREATE TABLE t (x)")
		}, want: "another application"},
		{name: "flipped head header", edit: func(p string) { flipInHeader(t, p, head, false) }, want: "stored hash"},
		{name: "flipped tail header", edit: func(p string) { flipInHeader(t, p, head-5, false) }, want: "stored hash"},
		{name: "rewritten tail header", edit: func(p string) { flipInHeader(t, p, head-5, true) }, want: "does not link"},
		{name: "deleted entries row", edit: func(p string) { editSQL(t, p, "DELETE FROM chunks WHERE "+chunkOf(77)) }, want: "chunks rows"},
		{name: "deleted head block", edit: func(p string) { editSQL(t, p, "DELETE FROM blocks WHERE height = 24") }, want: "ends the log"},
		{name: "cut stored hashes", edit: func(p string) {
			editHashes(t, p, 239, func(hs []byte) {}, 32)
		}, want: "bytes of stored hashes"},
		{name: "flipped head stored hash", edit: func(p string) {
			editHashes(t, p, 239, func(hs []byte) { hs[32*2] ^= 1 }, 0)
		}, want: "stored hash"},
		{name: "changed head record", edit: func(p string) {
			changeCommit(t, p, 235)
		}, want: "record 235"},
		{name: "flipped stored hash on the root path", edit: func(p string) {
			editHashes(t, p, 127, func(hs []byte) { hs[32*top] ^= 1 }, 0)
		}, want: "log root"},
		{name: "flipped old header", edit: func(p string) { flipInHeader(t, p, 2, false) },
			audit: func(t *testing.T, p string) { wantAuditFailure(t, p, c, 2) }},
		{name: "flipped old stored hash", edit: func(p string) {
			editHashes(t, p, 30, func(hs []byte) { hs[0] ^= 1 }, 0)
		}, audit: func(t *testing.T, p string) { wantAuditFailure(t, p, c, 4) }},
		{name: "cut old stored hashes", edit: func(p string) {
			editHashes(t, p, 63, func(hs []byte) {}, 32)
		}, audit: func(t *testing.T, p string) { wantAuditFailure(t, p, c, 7) }},
		{name: "changed old record", edit: func(p string) {
			changeCommit(t, p, 25)
		}, audit: func(t *testing.T, p string) { wantAuditFailure(t, p, c, 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ledger.db")
			file := tc.file
			if file == nil {
				file = good
			}
			if err := os.WriteFile(p, file, 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(p)
			}
			s, err := Open(ctx, p)
			if tc.audit != nil {
				if err != nil {
					t.Fatalf("Open = %v; want it to open (only the tail is checked)", err)
				}
				s.Close()
				tc.audit(t, p)
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("Open = nil error; want ErrCorrupt")
			}
			if !errors.Is(err, ledger.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("Open = %v; want ErrCorrupt naming the file and %q", err, tc.want)
			}
			t.Logf("Open = %v", err)
		})
	}
}

func wantAuditFailure(t *testing.T, path string, c *ledgertest.Chain, height uint64) {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = ledger.Audit(context.Background(), s, c.Genesis, nil, nil)
	var ae *ledger.AuditError
	if !errors.As(err, &ae) || ae.Height != height || !errors.Is(err, ledger.ErrCorrupt) {
		t.Fatalf("Audit = %v; want an AuditError at height %d", err, height)
	}
	t.Logf("Audit = %v", err)
}

// TestFlippedDiskByte flips single bytes of the file on disk, as a failing
// disk would: in the head block's header text, and in b-tree page headers.
func TestFlippedDiskByte(t *testing.T) {
	ctx := context.Background()
	good, c := corruptFixture(t)
	head := c.Head().Header.Format()
	at := bytes.Index(good, head)
	if at < 0 {
		t.Fatal("head header not found in the file")
	}
	for _, tc := range []struct {
		name string
		off  int
	}{
		{"head header text", at + bytes.Index(head, []byte("\nlog ")) + 10},
		{"page 2 b-tree type", 4096},
		{"page 3 cell count", 2*4096 + 3},
		{"database header page count", 28},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := bytes.Clone(good)
			bad[tc.off] ^= 0x5a
			p := filepath.Join(t.TempDir(), "ledger.db")
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := Open(ctx, p)
			if err == nil {
				// Some flips leave a valid file (a page count SQLite
				// recomputes, free space): then it must still audit.
				defer s.Close()
				if _, err := ledger.Audit(ctx, s, c.Genesis, nil, nil); err != nil {
					t.Fatalf("Open = nil, but Audit = %v", err)
				}
				t.Logf("flip at %d is harmless: Open and Audit pass", tc.off)
				return
			}
			if !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("Open = %v; want ErrCorrupt", err)
			}
			t.Logf("Open = %v", err)
		})
	}
}

func TestNewerSchema(t *testing.T) {
	s := openTemp(t)
	s.Close()
	editSQL(t, s.Path(), fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1))
	_, err := Open(context.Background(), s.Path())
	if err == nil || errors.Is(err, ledger.ErrCorrupt) || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open(schema version %d) = %v; want a newer-schema error, not ErrCorrupt", schemaVersion+1, err)
	}
}
