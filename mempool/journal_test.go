package mempool

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz from the seeds built in journal_test.go")

// journalSeeds returns encodings the decoder must handle: good ones of
// every shape, and near misses.
func journalSeeds(t testing.TB) [][]byte {
	vals := signers(t, 2)
	k := mustKey(t, "github.com/example/repo@v1.2.3")
	r := record(k, "")
	full := &Entry{
		Key:       k,
		Claim:     Claim{Commit: r.Commit, Tree: r.Tree},
		Added:     time.UnixMilli(1_700_000_000_123),
		Submitter: "192.0.2.7",
		Attestations: []ledger.Attestation{
			ledger.Attest(vals[0], testChain, r),
			ledger.Attest(vals[1], testChain, record(k, "moved")),
		},
	}
	good := encodeEntry(full, 42)
	unsorted := *full
	unsorted.Attestations = []ledger.Attestation{full.Attestations[1], full.Attestations[0]}
	foreign := *full
	foreign.Attestations = []ledger.Attestation{ledger.Attest(vals[0], testChain, record(mustKey(t, "github.com/example/other@v1"), ""))}
	return [][]byte{
		encodeEntry(&Entry{Key: k}, 0),
		good,
		encodeEntry(&unsorted, 1),
		encodeEntry(&foreign, 2),
		[]byte(strings.Replace(string(good), `"v":1`, `"v":2`, 1)),
		[]byte(strings.Replace(string(good), `"key":"`, `"key":"https://`, 1)),
		[]byte(strings.Replace(string(good), `"order"`, `"extra":0,"order"`, 1)),
		append(good, `{}`...),
		[]byte(`{"v":1,"key":"a.b/c@v1","order":-9223372036854775808,"added":9223372036854775807}`),
	}
}

const fuzzDir = "testdata/fuzz/FuzzDecodeEntry"

// TestFuzzCorpus checks that testdata/fuzz holds the current seeds;
// go test -run TestFuzzCorpus -update rewrites it.
func TestFuzzCorpus(t *testing.T) {
	for i, seed := range journalSeeds(t) {
		name := filepath.Join(fuzzDir, fmt.Sprintf("seed%d", i))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
		if *update {
			if err := os.MkdirAll(fuzzDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != want {
			t.Errorf("%s is not the current seed (%v); run go test -run TestFuzzCorpus -update", name, err)
		}
	}
}

// FuzzDecodeEntry checks that the journal decoder never panics and that
// what it accepts encodes back to an encoding that decodes to the same. Its
// seed corpus is testdata/fuzz/FuzzDecodeEntry (see TestFuzzCorpus).
func FuzzDecodeEntry(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		e, order, err := decodeEntry(data)
		if err != nil {
			if !errors.Is(err, errJournal) {
				t.Fatalf("decodeEntry error %v does not wrap errJournal", err)
			}
			return
		}
		enc := encodeEntry(e, order)
		e2, order2, err := decodeEntry(enc)
		if err != nil {
			t.Fatalf("decodeEntry(encodeEntry(x)) = %v\n%s", err, enc)
		}
		if order2 != order || !reflect.DeepEqual(e2, e) {
			t.Fatalf("round trip changed the entry:\n%+v %d\n%+v %d", e, order, e2, order2)
		}
		if enc2 := encodeEntry(e2, order2); string(enc2) != string(enc) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

func TestDecodeEntrySeeds(t *testing.T) {
	seeds := journalSeeds(t)
	for i, ok := range []bool{true, true, false, false, false, false, false, false, true} {
		_, _, err := decodeEntry(seeds[i])
		if (err == nil) != ok {
			t.Errorf("decodeEntry(seed %d) = %v, want ok %v", i, err, ok)
		}
	}
}

func TestMemJournal(t *testing.T) {
	ctx := context.Background()
	var j MemJournal
	data := []byte("x")
	j.PutPending(ctx, "b", data)
	data[0] = 'y' // the journal keeps its own copy
	j.PutPending(ctx, "a", []byte("1"))
	j.PutPending(ctx, "a", []byte("2"))
	j.DeletePending(ctx, "c")
	var got []string
	err := j.LoadPending(ctx, func(id string, data []byte) error {
		got = append(got, id+"="+string(data))
		return nil
	})
	if err != nil || strings.Join(got, " ") != "a=2 b=x" {
		t.Errorf("LoadPending = %v, %v; want [a=2 b=x]", got, err)
	}
	stop := errors.New("stop")
	if err := j.LoadPending(ctx, func(string, []byte) error { return stop }); err != stop {
		t.Errorf("LoadPending with a failing callback = %v, want %v", err, stop)
	}
	j.DeletePending(ctx, "a", "b")
	if n := j.Len(); n != 0 {
		t.Errorf("Len() = %d after deleting all", n)
	}
}
