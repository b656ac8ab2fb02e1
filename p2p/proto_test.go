package p2p

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

var update = flag.Bool("update", false, "rewrite testdata/fuzz from the seeds in proto_test.go")

func TestConfigValidate(t *testing.T) {
	good := func() Config { return testConfig(testGenesis, nil, nil) }
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"bad chain", func(c *Config) { c.Chain = "a b" }, false},
		{"no genesis", func(c *Config) { c.Genesis = ledger.Hash{} }, false},
		{"short key", func(c *Config) { c.Key = c.Key[:32] }, false},
		{"bad listen", func(c *Config) { c.Listen = []string{"127.0.0.1:80"} }, false},
		{"bootstrap without id", func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} }, false},
		{"bootstrap", func(c *Config) {
			c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWPbq6hauXj5TxAmrt5JtcKkzXDdZKQy249zmPagTjQ8uD"}
		}, true},
		{"mdns", func(c *Config) { c.MDNS = true }, mdnsAvailable},
		{"version with space", func(c *Config) { c.Version = "a b" }, false},
		{"tiny messages", func(c *Config) { c.MaxMessageBytes = 100 }, false},
		{"pool cap over message cap", func(c *Config) { c.MaxMessageBytes, c.MaxPoolMessageBytes = 1<<20, 2<<20 }, false},
		{"small queue", func(c *Config) { c.QueueSize = 8 }, false},
		{"water marks", func(c *Config) { c.ConnLow, c.ConnHigh = 10, 5 }, false},
		{"conns under high mark", func(c *Config) { c.MaxConns = 50 }, false},
		{"backoff", func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Minute, time.Second }, false},
		{"sync blocks", func(c *Config) { c.SyncMaxBlocks = 100_000 }, false},
		{"sync bytes", func(c *Config) { c.SyncMaxBytes = 1000 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func sampleHello() *hello {
	return &hello{Chain: "test", Genesis: testGenesis, Height: 42, Head: ledger.SumSHA256([]byte("head")), Version: "vcsledger/0.1.0"}
}

func TestHelloRoundTrip(t *testing.T) {
	h := sampleHello()
	got, err := parseHello(h.format())
	if err != nil {
		t.Fatal(err)
	}
	if *got != *h {
		t.Errorf("parseHello(format(h)) = %+v, want %+v", got, h)
	}
	good := string(h.format())
	for _, bad := range []string{
		"",
		strings.Replace(good, "vcsledger-hello/1", "vcsledger-hello/2", 1),
		strings.Replace(good, "height 42", "height 042", 1),
		strings.Replace(good, "height 42", "height -1", 1),
		strings.Replace(good, "chain test", "chain te st", 1),
		strings.Replace(good, "version vcsledger/0.1.0", "version ", 1),
		strings.TrimSuffix(good, "\n"),
		good + "extra\n",
		strings.Replace(good, "genesis ", "genesis X", 1),
	} {
		if _, err := parseHello([]byte(bad)); !errors.Is(err, ErrProtocol) {
			t.Errorf("parseHello(%q) = %v, want ErrProtocol", bad, err)
		}
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		line string
		want *request
	}{
		{"status", &request{Kind: reqStatus}},
		{"headers 0 10", &request{Kind: reqHeaders, From: 0, Count: 10}},
		{"blocks 5 256 33554432", &request{Kind: reqBlocks, From: 5, Count: 256, MaxBytes: 32 << 20}},
		{"cosigs 7 16", &request{Kind: reqCosigs, From: 7, Count: 16}},
		{"cosigs 7 0", nil},
		{"cosigs 7 16 1", nil},
		{"status ", nil},
		{"headers 1", nil},
		{"headers 01 10", nil},
		{"headers 1 0", nil},
		{"headers 1 10 5", nil},
		{"blocks 1 10", nil},
		{"blocks 1 10 0", nil},
		{"blocks 1 2000000 10", nil},
		{"blocks 18446744073709551616 1 1", nil},
		{"blocks  1 1 1", nil},
		{"fetch 1 1", nil},
		{strings.Repeat("9", 100), nil},
	}
	for _, tc := range tests {
		got, err := parseRequest(tc.line)
		switch {
		case tc.want == nil && !errors.Is(err, ErrProtocol):
			t.Errorf("parseRequest(%q) = %+v, %v; want ErrProtocol", tc.line, got, err)
		case tc.want != nil && (err != nil || *got != *tc.want):
			t.Errorf("parseRequest(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		case tc.want != nil && string(got.format()) != tc.line+"\n":
			t.Errorf("format(parseRequest(%q)) = %q", tc.line, got.format())
		}
	}
}

func TestReadResponse(t *testing.T) {
	lim := responseLimits{items: 3, itemSize: 10, total: 15}
	tests := []struct {
		in      string
		want    []string
		wantErr error
	}{
		{"end\n", nil, nil},
		{"item 3\nabcitem 0\nend\n", []string{"abc", ""}, nil},
		{"item 10\n0123456789item 10\n0123456789item 5\n01234end\n", []string{"0123456789", "0123456789", "01234"}, nil},
		{"item 10\n0123456789item 10\n0123456789item 6\n012345end\n", nil, ErrProtocol}, // total
		{"item 11\n01234567890end\n", nil, ErrProtocol},                                 // item size
		{"item 1\naitem 1\nbitem 1\ncitem 1\nd", nil, ErrProtocol},                      // items
		{"item 3\nab", nil, ErrProtocol},
		{"item 3\nabc", nil, ErrProtocol},
		{"item 03\nabcend\n", nil, ErrProtocol},
		{"items 3\nabcend\n", nil, ErrProtocol},
		{"", nil, ErrProtocol},
		{"item 1\nxerror store failed\n", nil, &RemoteError{}},
	}
	for _, tc := range tests {
		got, err := readResponse(bufio.NewReader(strings.NewReader(tc.in)), lim)
		if tc.wantErr != nil {
			var re *RemoteError
			if _, isRemote := tc.wantErr.(*RemoteError); isRemote && !errors.As(err, &re) || !isRemote && !errors.Is(err, tc.wantErr) {
				t.Errorf("readResponse(%q) = %v, want %v", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("readResponse(%q) = %d items, %v; want %q", tc.in, len(got), err, tc.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("readResponse(%q) item %d = %q, want %q", tc.in, i, got[i], tc.want[i])
			}
		}
	}
	// An item over a MiB, which is read in two parts, whole and cut short
	// in each part.
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	big[1<<20] = 'x'
	lim = responseLimits{items: 1, itemSize: len(big), total: int64(len(big))}
	head := fmt.Sprintf("item %d\n", len(big))
	got, err := readResponse(bufio.NewReader(strings.NewReader(head+string(big)+"end\n")), lim)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], big) {
		t.Errorf("readResponse(a 3 MiB item) = %d items, %v; want the item", len(got), err)
	}
	for _, cut := range []int{10, 1 << 20, 1<<20 + 10, len(big) - 1} {
		if _, err := readResponse(bufio.NewReader(strings.NewReader(head+string(big[:cut]))), lim); !errors.Is(err, ErrProtocol) {
			t.Errorf("readResponse(a 3 MiB item cut at %d) = %v, want ErrProtocol", cut, err)
		}
	}
}

func TestBlockHeader(t *testing.T) {
	c := buildChain(t, 1, 2, 3)
	b := c.Head()
	h, err := blockHeader(b.Format())
	if err != nil || h.Hash() != b.Hash() {
		t.Errorf("blockHeader(block) = %v, %v; want the block's header", h, err)
	}
	for _, bad := range [][]byte{nil, []byte("vcsledger-blockdata/1\nheader 99999\nx"), b.Header.Format()} {
		if _, err := blockHeader(bad); err == nil {
			t.Errorf("blockHeader(%q) succeeded", bad)
		}
	}
}

// fuzzSeeds returns the seeds of each fuzz target.
func fuzzSeeds(t testing.TB) map[string][][]byte {
	c := buildChain(t, 1, 1, 2)
	block := c.Head().Format()
	header := c.Head().Header.Format()
	resp := func(items ...[]byte) []byte {
		var b bytes.Buffer
		for _, it := range items {
			fmt.Fprintf(&b, "item %d\n", len(it))
			b.Write(it)
		}
		b.WriteString("end\n")
		return b.Bytes()
	}
	return map[string][][]byte{
		"FuzzParseHello": {sampleHello().format(), []byte("vcsledger-hello/1\n")},
		"FuzzParseRequest": {
			[]byte("status"), []byte("headers 0 10"), []byte("blocks 1 256 33554432"), []byte("blocks 1 0 1"),
		},
		"FuzzReadResponse": {
			resp(), resp(header), resp(block, block), []byte("error store failed\n"), []byte("item 5\nab"),
		},
	}
}

func addFuzzSeeds(f *testing.F, name string) {
	for _, s := range fuzzSeeds(f)[name] {
		f.Add(s)
	}
}

// TestFuzzSeedCorpus writes (with -update) or checks the committed seed
// corpus in testdata/fuzz/<FuzzName>.
func TestFuzzSeedCorpus(t *testing.T) {
	for name, ss := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", name)
		for i, s := range ss {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			path := filepath.Join(dir, fmt.Sprintf("seed-%03d", i))
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got, err := os.ReadFile(path); err != nil || string(got) != body {
				t.Errorf("%s is missing or stale (go test ./p2p -run FuzzSeedCorpus -update): %v", path, err)
			}
		}
	}
}

func FuzzParseHello(f *testing.F) {
	addFuzzSeeds(f, "FuzzParseHello")
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHello(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("parseHello(%q) = %v, want ErrProtocol", data, err)
			}
			return
		}
		if got := h.format(); !bytes.Equal(got, data) {
			t.Fatalf("parseHello(%q) then format = %q", data, got)
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	addFuzzSeeds(f, "FuzzParseRequest")
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRequest(string(data))
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("parseRequest(%q) = %v, want ErrProtocol", data, err)
			}
			return
		}
		if got := r.format(); string(got) != string(data)+"\n" {
			t.Fatalf("parseRequest(%q) then format = %q", data, got)
		}
		if r.Kind != reqStatus && r.Count < 1 {
			t.Fatalf("parseRequest(%q): count %d", data, r.Count)
		}
	})
}

func FuzzReadResponse(f *testing.F) {
	addFuzzSeeds(f, "FuzzReadResponse")
	lim := responseLimits{items: 4, itemSize: 4096, total: 8192}
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := readResponse(bufio.NewReader(bytes.NewReader(data)), lim)
		if err != nil {
			var re *RemoteError
			if !errors.Is(err, ErrProtocol) && !errors.As(err, &re) {
				t.Fatalf("readResponse(%q) = %v, want ErrProtocol or a RemoteError", data, err)
			}
			return
		}
		if len(items) > lim.items {
			t.Fatalf("readResponse returned %d items, limit %d", len(items), lim.items)
		}
		var total int64
		for i, it := range items {
			if len(it) > lim.itemSize {
				t.Fatalf("item of %d bytes, limit %d", len(it), lim.itemSize)
			}
			if i > 0 {
				total += int64(len(it))
			}
		}
		if total > lim.total {
			t.Fatalf("items total %d bytes, limit %d", total, lim.total)
		}
		// Items the reader accepts re-encode to a prefix of the input.
		var b bytes.Buffer
		for _, it := range items {
			fmt.Fprintf(&b, "item %d\n", len(it))
			b.Write(it)
		}
		b.WriteString("end\n")
		if !bytes.HasPrefix(data, b.Bytes()) {
			t.Fatalf("readResponse(%q) = %q: does not re-encode to the input", data, items)
		}
	})
}
