package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// The conformance suite again, with the key index's tail merged into the
// keys table after every block, and after every few.
func TestConformanceKeyMerge(t *testing.T) {
	for _, n := range []int64{1, 7} {
		t.Run(fmt.Sprintf("every%d", n), func(t *testing.T) {
			ledgertest.TestStore(t, func(t *testing.T) ledger.Store {
				return openTemp(t, withKeyMerge(n))
			})
		})
	}
}

// keyIndexState returns what the keys table and its tail hold.
func keyIndexState(t *testing.T, s *Store) (indexed, keys int64, tail int) {
	t.Helper()
	if err := s.r.QueryRow("SELECT (SELECT n FROM keys_indexed), (SELECT count(*) FROM keys)").Scan(&indexed, &keys); err != nil {
		t.Fatal(err)
	}
	s.keys.mu.RLock()
	defer s.keys.mu.RUnlock()
	if s.keys.indexed != indexed {
		t.Fatalf("the store holds %d records indexed; the file says %d", s.keys.indexed, indexed)
	}
	return indexed, keys, s.keys.tail.len()
}

// checkKeys checks that every record of c is found by key at its index,
// and that keys of no record are not.
func checkKeys(t *testing.T, s *Store, c *ledgertest.Chain) {
	t.Helper()
	ctx := context.Background()
	var all []ledger.Key
	for _, b := range c.Blocks() {
		first := int64(b.Header.LogSize - b.Header.Records)
		for i := range b.Records {
			k := b.Records[i].Key
			all = append(all, k)
			e, err := s.Lookup(ctx, k)
			if err != nil || e.Index != first+int64(i) || e.Height != b.Header.Height {
				t.Fatalf("Lookup(%s) = %+v, %v; want index %d at height %d", k, e, err, first+int64(i), b.Header.Height)
			}
		}
	}
	fresh := ledgertest.RandomRecord(rand.New(rand.NewPCG(9, 9)), 900_000).Key
	if _, err := s.Lookup(ctx, fresh); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Lookup(%s) = %v; want ErrNotFound", fresh, err)
	}
	for _, at := range []int{0, len(all) / 2, len(all) - 1} {
		if i, err := s.FirstCommitted(ctx, []ledger.Key{fresh, all[at], all[0]}); err != nil || i != 1 {
			t.Fatalf("FirstCommitted(fresh, record %d, record 0) = %d, %v; want 1", at, i, err)
		}
	}
	if i, err := s.FirstCommitted(ctx, []ledger.Key{fresh}); err != nil || i != -1 {
		t.Fatalf("FirstCommitted(fresh) = %d, %v; want -1", i, err)
	}
}

// TestKeyIndexMerge appends blocks to a store whose tail merges at 25
// records, and checks that keys are found, and refused again, whether
// they are in the keys table or in the tail, before and after a reopen.
func TestKeyIndexMerge(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, withKeyMerge(25))
	c := buildChain(t, s, 12, 10) // merges after blocks 3, 6, 9 and 12
	if indexed, keys, tail := keyIndexState(t, s); indexed != 120 || keys != 120 || tail != 0 {
		t.Fatalf("after 120 records: %d indexed, %d keys, tail %d; want 120, 120, 0", indexed, keys, tail)
	}
	b, stored := c.Unsealed(ledgertest.Records(rand.New(rand.NewPCG(5, 5)), 5000, 10))
	b.Certificate = c.Certify(b, nil)
	if err := s.Append(ctx, b, stored); err != nil {
		t.Fatal(err)
	}
	c.Commit(b, stored)
	if indexed, keys, tail := keyIndexState(t, s); indexed != 120 || keys != 120 || tail != 10 {
		t.Fatalf("after 130 records: %d indexed, %d keys, tail %d; want 120, 120, 10", indexed, keys, tail)
	}
	checkKeys(t, s, c)

	// A block repeating a key of the table, of the tail, or one of its
	// own is refused and changes nothing.
	head := c.Head()
	for name, dup := range map[string]ledger.Record{"table": c.Blocks()[2].Records[4], "tail": head.Records[3], "block": {}} {
		recs := ledgertest.Records(rand.New(rand.NewPCG(6, 6)), 6000, 5)
		if name == "block" {
			dup = recs[0]
		}
		recs = append(recs, dup)
		b, stored := c.Unsealed(recs)
		b.Certificate = c.Certify(b, nil)
		if err := s.Append(ctx, b, stored); !errors.Is(err, ledger.ErrConflict) {
			t.Fatalf("Append(key of the %s again) = %v; want ErrConflict", name, err)
		}
		if h, _ := s.Head(ctx); h.Hash() != head.Hash() {
			t.Fatalf("a refused block moved the head")
		}
		if _, err := s.Lookup(ctx, recs[1].Key); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("a refused block's key is found: %v", err)
		}
	}

	s = reopen(t, s)
	if indexed, keys, tail := keyIndexState(t, s); indexed != 120 || keys != 120 || tail != 10 {
		t.Fatalf("reopened: %d indexed, %d keys, tail %d; want 120, 120, 10", indexed, keys, tail)
	}
	checkKeys(t, s, c)
	if _, err := ledger.Audit(ctx, s, c.Genesis, nil, nil); err != nil {
		t.Fatalf("Audit = %v", err)
	}
}

// downgrade turns the closed store at path into a file of schema version
// 1 or 2, which kept a records row per log entry: in version 1 its key
// column was UNIQUE, in version 2 the keys table indexed every key.
func downgrade(tb testing.TB, path string, version int) {
	tb.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	unique := ""
	if version == 1 {
		unique = " UNIQUE"
	}
	if _, err := db.Exec("CREATE TABLE records (idx INTEGER PRIMARY KEY, key TEXT NOT NULL" + unique + ", height INTEGER NOT NULL, data BLOB NOT NULL, hashes BLOB NOT NULL)"); err != nil {
		tb.Fatal(err)
	}
	rows, err := db.Query("SELECT " + chunkColumns + " FROM chunks ORDER BY first")
	if err != nil {
		tb.Fatal(err)
	}
	type row struct {
		idx, height int64
		key         string
		data, hs    []byte
	}
	var all []row
	for rows.Next() {
		var first, height, firstHash int64
		var hashes, data []byte
		if err := rows.Scan(&first, &height, &firstHash, &hashes, &data); err != nil {
			tb.Fatal(err)
		}
		var c chunkRow[[]byte]
		if err := c.split(first, height, firstHash, hashes, data); err != nil {
			tb.Fatal(err)
		}
		for i, e := range c.entries {
			idx := first + int64(i)
			key, ok := ledger.EncodedKey(e)
			if !ok {
				key = fmt.Sprintf("vcsledger-authority/1 %020d", idx)
			}
			all = append(all, row{idx, height, key, bytes.Clone(e), bytes.Clone(c.hashesOf(idx, idx+1))})
		}
	}
	rows.Close()
	for _, r := range all {
		if _, err := db.Exec("INSERT INTO records VALUES (?, ?, ?, ?, ?)", r.idx, r.key, r.height, r.data, r.hs); err != nil {
			tb.Fatal(err)
		}
	}
	stmts := []string{"DROP TABLE chunks", "DROP TABLE authorities", "DROP TABLE keys", "DROP TABLE keys_indexed"}
	if version == 2 {
		stmts = append(stmts,
			"CREATE TABLE keys (key TEXT PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID",
			"CREATE TABLE keys_indexed (n INTEGER NOT NULL)",
			"INSERT INTO keys SELECT key, idx FROM records ORDER BY key",
			"INSERT INTO keys_indexed SELECT count(*) FROM records")
	}
	stmts = append(stmts, fmt.Sprintf("PRAGMA user_version = %d", version), "VACUUM")
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestUpgrade opens files of schema versions 1 and 2, which kept a
// records row per log entry, and checks that they are upgraded whole.
func TestUpgrade(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("version%d", version), func(t *testing.T) {
			ctx := context.Background()
			s := openTemp(t, withKeyMerge(15))
			c := buildChain(t, s, 4, 10)
			path := s.Path()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			downgrade(t, path, version)

			s, err := Open(ctx, path)
			if err != nil {
				t.Fatalf("Open(version %d) = %v", version, err)
			}
			defer s.Close()
			var ver, records int
			if err := s.r.QueryRow("SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_schema WHERE tbl_name = 'records')").Scan(&ver, &records); err != nil || ver != schemaVersion || records != 0 {
				t.Fatalf("user_version = %d, records table entries %d, %v; want %d and none", ver, records, err, schemaVersion)
			}
			if indexed, keys, tail := keyIndexState(t, s); indexed != 40 || keys != 40 || tail != 0 {
				t.Fatalf("upgraded: %d indexed, %d keys, tail %d; want 40, 40, 0", indexed, keys, tail)
			}
			checkKeys(t, s, c)
			if _, err := ledger.Audit(ctx, s, c.Genesis, nil, nil); err != nil {
				t.Fatalf("Audit = %v", err)
			}
			dup, stored := c.Unsealed([]ledger.Record{c.Blocks()[1].Records[0]})
			dup.Certificate = c.Certify(dup, nil)
			if err := s.Append(ctx, dup, stored); !errors.Is(err, ledger.ErrConflict) {
				t.Fatalf("Append(committed key) after the upgrade = %v; want ErrConflict", err)
			}
		})
	}
}

// TestKeyIndexCorrupt checks that Open refuses a key index that does not
// agree with the records.
func TestKeyIndexCorrupt(t *testing.T) {
	// Blocks 4 and 5 (records 30 to 49) are the tail; Open checks block 5
	// as the head.
	sameAs35 := func(p string) {
		var rec []byte
		editEntry(t, p, 35, func(data, hs []byte) ([]byte, []byte) { rec = data; return data, hs })
		editEntry(t, p, 36, func(_, hs []byte) ([]byte, []byte) { return rec, hs })
	}
	for _, tc := range []struct {
		name string
		edit func(path string)
		want string
	}{
		{"deleted key", sqlEdit(t, "DELETE FROM keys WHERE idx = 7"), "authority changes for"},
		{"indexed past the log", sqlEdit(t, "UPDATE keys_indexed SET n = 1000"), "indexed of"},
		{"indexed count missing", sqlEdit(t, "DELETE FROM keys_indexed"), "key index"},
		{"key twice in the tail", sameAs35, "twice (record 36 at height 4)"},
		{"not a record in the tail", func(p string) {
			editEntry(t, p, 36, func(data, hs []byte) ([]byte, []byte) { data[0] ^= 0x20; return data, hs })
		}, "record 36 at height 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t, withKeyMerge(25))
			buildChain(t, s, 5, 10) // 30 records indexed, 20 in the tail
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.edit(s.Path())
			_, err := Open(context.Background(), s.Path())
			if !errors.Is(err, ledger.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v; want corruption saying %q", err, tc.want)
			}
		})
	}
}

// TestKeyFilter checks that the filter holds every key added and lets few
// others pass.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(100_000)
	for i := range 200_000 {
		f.add(keyHash(fmt.Sprintf("example.com/r%d@v1", i)))
	}
	if f.full(0) || !f.full(1) {
		t.Fatalf("filter for 2x100,000 keys: full(0) = %v, full(1) = %v after 200,000", f.full(0), f.full(1))
	}
	for i := range 200_000 {
		if !f.mayHave(keyHash(fmt.Sprintf("example.com/r%d@v1", i))) {
			t.Fatalf("key %d added but not held", i)
		}
	}
	pass := 0
	for i := range 100_000 {
		if f.mayHave(keyHash(fmt.Sprintf("example.com/r%d@v2", i))) {
			pass++
		}
	}
	if pass > 2_000 {
		t.Fatalf("%d of 100,000 absent keys pass; want about 1%%", pass)
	}
	t.Logf("%d of 100,000 absent keys pass", pass)
}

// TestKeyFilterGrows fills a store's filter and checks that the next
// merge starts another, and that keys in either are found.
func TestKeyFilterGrows(t *testing.T) {
	s := openTemp(t, withKeyMerge(10))
	c := buildChain(t, s, 2, 10) // merged after each block
	s.wmu.Lock()
	first := s.keys.filter[0]
	first.limit = first.keys + 5
	s.wmu.Unlock()
	b, stored := c.Unsealed(ledgertest.Records(rand.New(rand.NewPCG(7, 7)), 7000, 10))
	b.Certificate = c.Certify(b, nil)
	if err := s.Append(context.Background(), b, stored); err != nil {
		t.Fatal(err)
	}
	c.Commit(b, stored)
	if fs := s.keys.filter; len(fs) != 2 || fs[0].keys != 20 || fs[1].keys != 10 || fs[1].limit < 40 {
		t.Fatalf("after a merge past its limit: %d filters; want the first of 20 keys and one of 10, for 40 or more", len(fs))
	}
	checkKeys(t, s, c)
}
