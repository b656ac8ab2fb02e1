//go:build linux

package vcs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkHashVsGitCLI compares, on one generated repository, the time
// and peak memory of
//
//	vcs:  vcs.Hash over file:// with an empty cache (fetch + t1), and
//	git:  git clone --depth 1 --branch TAG file://... followed by hashing
//	      the checkout the same way (walk, read, SHA-256 on two cores).
//
// Each side runs in child processes; peak RSS is the ru_maxrss that wait4
// reports for the child, which on Linux covers the largest process of its
// tree (git clone's upload-pack, pack-objects and index-pack are children
// of the measured process; so is vcs's git-upload-pack, the server side).
// vcs-go-maxrss is the peak RSS of the Go process running vcs.Hash alone.
//
// The repository has VCSLEDGER_BENCH_FILES files (default 20000) and
// VCSLEDGER_BENCH_MB MiB of content (default 300): source-like text in
// files of a few KiB to a few hundred KiB, and 5% incompressible files. It
// is written once per run with git fast-import. Run it with
//
//	go test ./vcs -run '^$' -bench HashVsGitCLI -benchtime 1x
func BenchmarkHashVsGitCLI(b *testing.B) {
	files := envInt("VCSLEDGER_BENCH_FILES", 20000)
	mib := envInt("VCSLEDGER_BENCH_MB", 300)
	repo := benchRepo(b, files, mib)
	b.ResetTimer()

	var vcsTime, gitTime time.Duration
	var vcsRSS, vcsSelf, gitRSS int64
	for i := 0; i < b.N; i++ {
		cache := b.TempDir()
		start := time.Now()
		t1vcs, rss, self := benchChild(b, "hash", "file://"+repo, cache)
		vcsTime += time.Since(start)
		vcsRSS = max(vcsRSS, rss)
		vcsSelf = max(vcsSelf, self)

		dir := filepath.Join(b.TempDir(), "checkout")
		start = time.Now()
		clone := exec.Command("git", "clone", "-q", "--depth", "1", "--branch", "bench", "file://"+repo, dir)
		clone.Env = gitEnv(b.TempDir())
		if out, err := clone.CombinedOutput(); err != nil {
			b.Fatalf("git clone: %v\n%s", err, out)
		}
		cloneRSS := clone.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
		t1git, walkRSS, _ := benchChild(b, "walk", dir, "")
		gitTime += time.Since(start)
		gitRSS = max(gitRSS, cloneRSS, walkRSS)

		if t1vcs != t1git {
			b.Fatalf("vcs.Hash t1 = %s, hashing the git checkout gives %s", t1vcs, t1git)
		}
		os.RemoveAll(dir)
		os.RemoveAll(cache)
	}
	n := float64(b.N)
	b.ReportMetric(vcsTime.Seconds()/n, "vcs-s/op")
	b.ReportMetric(gitTime.Seconds()/n, "git-s/op")
	b.ReportMetric(vcsTime.Seconds()/gitTime.Seconds(), "vcs/git")
	b.ReportMetric(float64(vcsRSS)/(1<<20), "vcs-maxrss-MiB")
	b.ReportMetric(float64(vcsSelf)/(1<<20), "vcs-go-maxrss-MiB")
	b.ReportMetric(float64(gitRSS)/(1<<20), "git-maxrss-MiB")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchChild runs this test binary as a helper process (see benchHelper)
// and returns the t1 it prints, the peak RSS of its process tree and its
// own peak RSS, in bytes.
func benchChild(b *testing.B, mode, arg, cache string) (string, int64, int64) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VCS_BENCH_HELPER="+mode, "VCS_BENCH_ARG="+arg, "VCS_BENCH_CACHE="+cache)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		b.Fatalf("%s helper: %v\n%s", mode, err, stderr)
	}
	t1, self, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	hwm, _ := strconv.ParseInt(self, 10, 64)
	return t1, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024, hwm
}

func init() { benchHelper = runBenchHelper }

// runBenchHelper is the body of the helper process; TestMain calls it.
func runBenchHelper(mode string) int {
	arg := os.Getenv("VCS_BENCH_ARG")
	var t1 string
	var err error
	switch mode {
	case "hash":
		var res *Result
		res, err = Hash(context.Background(), arg, "bench", Options{CacheDir: os.Getenv("VCS_BENCH_CACHE")})
		if res != nil {
			t1 = res.Tree
		}
	case "walk":
		t1, err = checkoutT1(arg)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(t1)
	fmt.Println(selfHWM())
	return 0
}

// selfHWM returns this process's own peak RSS in bytes (VmHWM), or 0.
func selfHWM() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// checkoutT1 hashes a checkout as t1 does a tree: every file and symbolic
// link below dir except .git, read and hashed on two goroutines.
func checkoutT1(dir string) (string, error) {
	type file struct {
		path string
		mode string
		sum  [32]byte
	}
	var list []*file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		f := &file{path: filepath.ToSlash(rel), mode: "100644"}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			f.mode = "120000"
		default:
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode()&0o100 != 0 {
				f.mode = "100755"
			}
		}
		list = append(list, f)
		return nil
	})
	if err != nil {
		return "", err
	}
	work := make(chan *file)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for f := range work {
				p := filepath.Join(dir, filepath.FromSlash(f.path))
				if f.mode == "120000" {
					target, err := os.Readlink(p)
					if err != nil {
						errs <- err
						return
					}
					f.sum = sha256.Sum256([]byte(target))
					continue
				}
				fh, err := os.Open(p)
				if err != nil {
					errs <- err
					return
				}
				h := sha256.New()
				_, err = io.CopyBuffer(h, fh, buf)
				fh.Close()
				if err != nil {
					errs <- err
					return
				}
				h.Sum(f.sum[:0])
			}
		}()
	}
	for _, f := range list {
		work <- f
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	slices.SortFunc(list, func(a, b *file) int { return strings.Compare(a.path, b.path) })
	h := sha256.New()
	for _, f := range list {
		fmt.Fprintf(h, "%s %x %s\n", f.mode, f.sum, f.path)
	}
	return "t1:" + base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

var (
	benchRepoOnce sync.Once
	benchRepoDir  string
	benchRepoErr  error
)

// benchRepo generates the benchmark repository once per process.
func benchRepo(b *testing.B, files, mib int) string {
	benchRepoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vcs-bench-")
		if err != nil {
			benchRepoErr = err
			return
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		start := time.Now()
		benchRepoDir = filepath.Join(dir, "repo")
		benchRepoErr = generateRepo(benchRepoDir, files, int64(mib)<<20)
		b.Logf("generated %d files, %d MiB in %v", files, mib, time.Since(start).Round(time.Millisecond))
	})
	if benchRepoErr != nil {
		b.Fatal(benchRepoErr)
	}
	return benchRepoDir
}

// generateRepo writes a repository of the given shape with git fast-import
// and tags its only commit "bench".
func generateRepo(dir string, files int, total int64) error {
	if out, err := exec.Command("git", "init", "-q", "--bare", dir).CombinedOutput(); err != nil {
		return fmt.Errorf("git init: %v\n%s", err, out)
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = dir
	cmd.Env = append(gitEnv(dir), "GIT_DIR="+dir)
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	w := bufio.NewWriterSize(in, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))

	// File sizes: log-uniform between 1 KiB and 256 KiB, scaled to total.
	sizes := make([]float64, files)
	var sum float64
	for i := range sizes {
		sizes[i] = 1024 * float64(int(1)<<rng.IntN(9)) * (1 + rng.Float64())
		sum += sizes[i]
	}
	var content []byte
	paths := make([]string, files)
	for i := range files {
		n := int(sizes[i] / sum * float64(total))
		binary := rng.IntN(20) == 0
		content = genContent(rng, content[:0], n, binary)
		fmt.Fprintf(w, "blob\nmark :%d\ndata %d\n", i+1, len(content))
		w.Write(content)
		w.WriteByte('\n')
		ext := ".go"
		if binary {
			ext = ".bin"
		}
		paths[i] = fmt.Sprintf("pkg%02d/sub%03d/file%05d%s", i%50, i%397, i, ext)
	}
	fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter Bench <bench@example.com> 1700000000 +0000\ndata 6\nbench\n", files+1)
	for i, p := range paths {
		mode := "100644"
		if i%100 == 0 {
			mode = "100755"
		}
		fmt.Fprintf(w, "M %s :%d %s\n", mode, i+1, p)
	}
	fmt.Fprintf(w, "\ntag bench\nfrom :%d\ntagger Bench <bench@example.com> 1700000000 +0000\ndata 6\nbench\n", files+1)
	if err := w.Flush(); err != nil {
		return err
	}
	in.Close()
	return cmd.Wait()
}

var benchWords = strings.Fields(`func return if else for range var const type struct interface map chan
	go defer select case switch default break continue err nil true false string int int64 uint8 byte
	error context ctx len cap make append copy new panic fmt Errorf Sprintf strings bytes Buffer io Reader
	Writer Close Read Write buf data n i j k key value result options config handler server client request
	response status path name id count total size offset limit index item list node tree hash sum`)

// genContent appends about n bytes of source-like text to b, or n random
// bytes when binary is set.
func genContent(rng *rand.Rand, b []byte, n int, binary bool) []byte {
	if binary {
		for len(b) < n {
			b = strconv.AppendUint(b, rng.Uint64(), 36)
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b[:n]
	}
	// Per-file identifiers, so files differ as real sources do.
	idents := make([]string, 40)
	for i := range idents {
		l := 3 + rng.IntN(10)
		s := make([]byte, l)
		for j := range s {
			s[j] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng.IntN(52)]
		}
		idents[i] = string(s)
	}
	word := func() string {
		if rng.IntN(3) == 0 {
			return idents[rng.IntN(len(idents))]
		}
		return benchWords[rng.IntN(len(benchWords))]
	}
	for len(b) < n {
		depth := rng.IntN(4)
		for range depth {
			b = append(b, '\t')
		}
		switch rng.IntN(6) {
		case 0:
			b = fmt.Appendf(b, "if %s != nil {\n", word())
		case 1:
			b = fmt.Appendf(b, "%s := %s.%s(%s, %d)\n", word(), word(), word(), word(), rng.IntN(1000))
		case 2:
			b = fmt.Appendf(b, "// %s %s the %s of %s.\n", word(), word(), word(), word())
		case 3:
			b = fmt.Appendf(b, "return %s, %s\n", word(), word())
		case 4:
			b = fmt.Appendf(b, "func (%s *%s) %s(%s %s) error {\n", word()[:1], word(), word(), word(), word())
		default:
			b = append(b, "}\n"...)
		}
	}
	return b[:n]
}
