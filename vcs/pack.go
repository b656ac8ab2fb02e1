package vcs

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/zlib"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// This file indexes a pack as it arrives. It does in one pass what git
// index-pack does, plus the one thing t1 needs from every blob: its SHA-256.
// Each object is inflated once while the pack streams in; its git id
// (SHA-1 with collision detection, as git and go-git use) and, for blobs,
// its SHA-256 are computed on a second goroutine from the same bytes, so a
// later hash of the tree reads only tree objects. Deltified objects are
// resolved afterwards, in parallel, from the pack file on disk.
//
// SPEC: https://git-scm.com/docs/gitformat-pack (pack and idx v2 formats).

// A packObject is what the indexer learns about one object of the pack.
type packObject struct {
	offset  int64         // offset of the object's entry in the pack
	size    int64         // inflated size; for deltas, the delta's size until resolved
	baseOff int64         // base offset of an OFS_DELTA, 0 otherwise
	baseID  plumbing.Hash // base id of a REF_DELTA
	id      plumbing.Hash // the object id, once known
	crc     uint32        // CRC-32 of the entry's bytes in the pack
	typ     plumbing.ObjectType
	delta   bool // stored as a delta
	done    bool // id (and digest) known
	digest  [32]byte
}

// A blobSum is the SHA-256 and size of a blob's content.
type blobSum struct {
	id     plumbing.Hash
	digest [32]byte
	size   int64
}

// A packResult names the files indexPack wrote.
type packResult struct {
	name    string // "pack-<checksum>"
	objects int
	blobs   int
}

// packReader is the buffered reader under the pack parser. It counts,
// checksums and writes to disk exactly the bytes the parser consumes, so the
// pack file on disk is the pack, byte for byte, whatever the stream holds
// after it. Consumed bytes are passed on in spans of its buffer, not byte by
// byte, so ReadByte (which inflating calls for every compressed byte) costs
// what bufio's does.
type packReader struct {
	src     io.Reader
	buf     []byte
	r, w    int   // buf[r:w] is read but not consumed
	done    int   // buf[:done] has been passed on
	base    int64 // pack offset of buf[0]
	crc     hash.Hash32
	sum     hash.Hash
	out     io.Writer
	max     int64
	onFlush func(pos int64)
}

func newPackReader(r io.Reader, out io.Writer, max int64) *packReader {
	return &packReader{
		src: r,
		buf: make([]byte, 256<<10),
		crc: crc32.NewIEEE(),
		sum: sha1.New(), // the pack trailer is an integrity check, not an id
		out: out,
		max: max,
	}
}

// pos returns the number of bytes consumed.
func (r *packReader) pos() int64 { return r.base + int64(r.r) }

func (r *packReader) ReadByte() (byte, error) {
	if r.r == r.w {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	b := r.buf[r.r]
	r.r++
	return b, nil
}

func (r *packReader) Read(p []byte) (int, error) {
	if r.r == r.w {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// fill passes on what was consumed and reads more into the empty buffer.
func (r *packReader) fill() error {
	if err := r.flush(); err != nil {
		return err
	}
	r.base += int64(r.w)
	r.r, r.w, r.done = 0, 0, 0
	for range 100 {
		n, err := r.src.Read(r.buf)
		r.w = n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// flush passes the bytes consumed since the last flush to the checksums
// and the pack file.
func (r *packReader) flush() error {
	if r.done == r.r {
		return nil
	}
	p := r.buf[r.done:r.r]
	r.done = r.r
	r.crc.Write(p)
	r.sum.Write(p)
	if _, err := r.out.Write(p); err != nil {
		return errorf(ErrCache, "writing pack: %w", err)
	}
	if r.pos() > r.max {
		return limitf("pack is larger than %d bytes", r.max)
	}
	if r.onFlush != nil {
		r.onFlush(r.pos())
	}
	return nil
}

// Pack object types, as stored in entry headers.
const (
	objCommit   = 1
	objTree     = 2
	objBlob     = 3
	objTag      = 4
	objOFSDelta = 6
	objREFDelta = 7
)

// readEntryHeader reads a pack entry header: type, size and, for deltas, the
// base (as a distance back for OFS_DELTA, as an id for REF_DELTA).
func readEntryHeader(r io.ByteReader) (typ byte, size int64, dist int64, base plumbing.Hash, err error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, 0, 0, base, err
	}
	typ = (c >> 4) & 7
	size = int64(c & 15)
	shift := uint(4)
	for c&0x80 != 0 {
		if shift > 56 {
			return 0, 0, 0, base, hostilef("malformed pack: object size overflows")
		}
		if c, err = r.ReadByte(); err != nil {
			return 0, 0, 0, base, err
		}
		size |= int64(c&0x7f) << shift
		shift += 7
	}
	switch typ {
	case objCommit, objTree, objBlob, objTag:
	case objOFSDelta:
		if c, err = r.ReadByte(); err != nil {
			return 0, 0, 0, base, err
		}
		dist = int64(c & 0x7f)
		for c&0x80 != 0 {
			if dist >= 1<<55 {
				return 0, 0, 0, base, hostilef("malformed pack: delta offset overflows")
			}
			if c, err = r.ReadByte(); err != nil {
				return 0, 0, 0, base, err
			}
			dist = ((dist + 1) << 7) | int64(c&0x7f)
		}
	case objREFDelta:
		for i := range base {
			if base[i], err = r.ReadByte(); err != nil {
				return 0, 0, 0, base, err
			}
		}
	default:
		return 0, 0, 0, base, hostilef("malformed pack: unknown object type %d", typ)
	}
	return typ, size, dist, base, nil
}

func gitType(t byte) plumbing.ObjectType {
	switch t {
	case objCommit:
		return plumbing.CommitObject
	case objTree:
		return plumbing.TreeObject
	case objBlob:
		return plumbing.BlobObject
	case objTag:
		return plumbing.TagObject
	}
	return plumbing.InvalidObject
}

// inflate decompresses one zlib stream from r into w and checks that it
// holds exactly size bytes. zr is reused between calls when not nil.
func inflate(zr *io.ReadCloser, r io.Reader, w io.Writer, size int64, buf []byte) error {
	if *zr == nil {
		z, err := zlib.NewReader(r)
		if err != nil {
			return zerr(err)
		}
		*zr = z
	} else if err := (*zr).(zlib.Resetter).Reset(r, nil); err != nil {
		return zerr(err)
	}
	n, err := io.CopyBuffer(w, io.LimitReader(*zr, size+1), buf)
	if err != nil {
		return zerr(err)
	}
	if n != size {
		return hostilef("malformed pack: object inflates to %d bytes, header says %d", n, size)
	}
	return nil
}

// zerr classifies an error met while inflating: a stream that ends early is
// a broken transfer, anything else a malformed pack.
func zerr(err error) error {
	var ke *kindError
	switch {
	case errors.As(err, &ke):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errorf(ErrNetwork, "pack stream ended early")
	case errors.Is(err, zlib.ErrChecksum), errors.Is(err, zlib.ErrHeader), errors.Is(err, zlib.ErrDictionary):
		return hostilef("malformed pack: %v", err)
	}
	var ce flate.CorruptInputError
	var ie flate.InternalError
	if errors.As(err, &ce) || errors.As(err, &ie) {
		return hostilef("malformed pack: %v", err)
	}
	return err
}

// hashJob carries object bytes from the inflating goroutine to the hashing one.
type hashJob struct {
	idx   int
	typ   plumbing.ObjectType
	size  int64
	data  []byte // a pooled buffer, or nil
	first bool
	last  bool
}

// hashResult is the hashing goroutine's answer for one object.
type hashResult struct {
	idx    int
	id     plumbing.Hash
	digest [32]byte
}

// objectHasher computes object ids and blob digests on its own goroutine.
type objectHasher struct {
	jobs    chan hashJob
	free    chan []byte
	results []hashResult
	done    chan struct{}

	// writer state, owned by the sending goroutine
	cur  hashJob
	buf  []byte
	sent bool
	made int // buffers taken from hashBufs, at most cap(free)
}

const hashChunk = 128 << 10

// hashBufs holds the hashing buffers of finished fetches for the next: a
// fetch takes only as many as it has objects in flight (most repositories'
// objects are smaller than one), not cap(free) of them each time.
var hashBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, hashChunk)
	return &b
}}

func newObjectHasher() *objectHasher {
	h := &objectHasher{
		jobs: make(chan hashJob, 32),
		free: make(chan []byte, 32),
		done: make(chan struct{}),
	}
	go h.run()
	return h
}

// take returns an empty buffer: a free one, else a pooled one while the
// hasher has fewer than cap(free), else the next one the hashing goroutine
// frees.
func (h *objectHasher) take() []byte {
	select {
	case b := <-h.free:
		return b
	default:
	}
	if h.made < cap(h.free) {
		h.made++
		return (*hashBufs.Get().(*[]byte))[:0]
	}
	return <-h.free
}

func (h *objectHasher) run() {
	defer close(h.done)
	var (
		id  plumbing.Hasher
		sum hash.Hash
		cur hashResult
	)
	sum = sha256.New()
	for j := range h.jobs {
		if j.first {
			id = plumbing.NewHasher(j.typ, j.size)
			sum.Reset()
			cur = hashResult{idx: j.idx}
		}
		if j.data != nil {
			id.Write(j.data)
			if j.typ == plumbing.BlobObject {
				sum.Write(j.data)
			}
			h.free <- j.data[:0]
		}
		if j.last {
			cur.id = id.Sum()
			if j.typ == plumbing.BlobObject {
				sum.Sum(cur.digest[:0])
			}
			h.results = append(h.results, cur)
		}
	}
}

// start begins a new object.
func (h *objectHasher) start(idx int, typ plumbing.ObjectType, size int64) {
	h.cur = hashJob{idx: idx, typ: typ, size: size, first: true}
	h.buf = h.take()
}

// Write implements io.Writer for the current object's content.
func (h *objectHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(h.buf[len(h.buf):cap(h.buf)], p)
		h.buf = h.buf[:len(h.buf)+k]
		p = p[k:]
		if len(h.buf) == cap(h.buf) {
			j := h.cur
			j.data = h.buf
			h.jobs <- j
			h.cur.first = false
			h.buf = h.take()
		}
	}
	return n, nil
}

// end finishes the current object.
func (h *objectHasher) end() {
	j := h.cur
	j.data, j.last = h.buf, true
	h.jobs <- j
	h.buf = nil
}

// abandon gives the buffer of an unfinished object back.
func (h *objectHasher) abandon() {
	if h.buf != nil {
		h.free <- h.buf[:0]
		h.buf = nil
	}
}

// close stops the goroutine and waits for it.
func (h *objectHasher) close() []hashResult {
	close(h.jobs)
	<-h.done
	// Every buffer is back in free (the hashing goroutine frees each job's,
	// abandon the writer's): keep them for the next fetch.
	for {
		select {
		case b := <-h.free:
			hashBufs.Put(&b)
		default:
			return h.results
		}
	}
}

// An indexer turns one pack stream into pack, idx and sums files.
type indexer struct {
	lim  Limits
	prog *progress
	dir  string

	objs     []packObject
	held     atomic.Int64 // object bytes held in memory by resolvers
	inflated atomic.Int64 // object bytes unpacked so far
}

// indexPack reads a pack from r and writes pack-<sum>.pack, .idx and .sums
// into dir. Files appear only when the whole pack is valid; the .pack is
// renamed into place last, so its presence means the other two are there.
func indexPack(ctx context.Context, r io.Reader, dir string, lim Limits, prog *progress) (*packResult, error) {
	ix := &indexer{lim: lim, prog: prog, dir: dir}
	tmp, err := os.CreateTemp(dir, "tmp-pack-*")
	if err != nil {
		return nil, errorf(ErrCache, "%w", err)
	}
	tmpName := tmp.Name()
	keep := false
	defer func() {
		tmp.Close()
		if !keep {
			os.Remove(tmpName)
		}
	}()

	bw := bufio.NewWriterSize(tmp, 1<<20)
	checksum, err := ix.scan(ctx, r, bw)
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, errorf(ErrCache, "writing pack: %w", err)
	}
	if err := ix.resolve(ctx, tmpName); err != nil {
		return nil, err
	}

	name := "pack-" + hex.EncodeToString(checksum[:])
	sums := ix.sums()
	if err := writeFileAtomic(filepath.Join(dir, name+".sums"), encodeSums(sums)); err != nil {
		return nil, err
	}
	var idx bytes.Buffer
	if err := ix.encodeIdx(&idx, checksum); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, name+".idx"), idx.Bytes()); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, errorf(ErrCache, "%w", err)
	}
	if err := os.Rename(tmpName, filepath.Join(dir, name+".pack")); err != nil {
		return nil, errorf(ErrCache, "%w", err)
	}
	keep = true
	return &packResult{name: name, objects: len(ix.objs), blobs: len(sums)}, nil
}

// scan reads the pack stream: every entry's header, every object inflated
// once, ids and digests of non-delta objects computed on the side.
func (ix *indexer) scan(ctx context.Context, r io.Reader, out io.Writer) (plumbing.Hash, error) {
	var checksum plumbing.Hash
	pr := newPackReader(r, out, ix.lim.MaxBytes)
	pr.onFlush = ix.prog.received

	var hdr [12]byte
	if _, err := io.ReadFull(pr, hdr[:]); err != nil {
		return checksum, zerr(err)
	}
	if string(hdr[:4]) != "PACK" {
		return checksum, hostilef("malformed pack: bad signature")
	}
	if v := binary.BigEndian.Uint32(hdr[4:8]); v != 2 && v != 3 {
		return checksum, hostilef("malformed pack: unsupported version %d", v)
	}
	count := int64(binary.BigEndian.Uint32(hdr[8:12]))
	// A depth-1 pack holds at most a tag chain, a commit, and one tree or
	// blob per tree entry.
	if max := min(2*int64(ix.lim.MaxFiles)+64, 1<<31-1); count > max {
		return checksum, limitf("pack has %d objects, more than %d", count, max)
	}
	ix.prog.objects(count)
	ix.objs = make([]packObject, 0, min(count, 1<<16))

	h := newObjectHasher()
	closed := false
	defer func() {
		if !closed {
			h.abandon()
			h.close()
		}
	}()
	var (
		zr  io.ReadCloser
		buf = make([]byte, 64<<10)
	)
	for i := int64(0); i < count; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return checksum, err
			}
		}
		if err := pr.flush(); err != nil {
			return checksum, err
		}
		pr.crc.Reset()
		off := pr.pos()
		typ, size, dist, base, err := readEntryHeader(pr)
		if err != nil {
			return checksum, zerr(err)
		}
		if ix.inflated.Add(size) > ix.lim.MaxBytes {
			return checksum, limitf("pack unpacks to more than %d bytes", ix.lim.MaxBytes)
		}
		o := packObject{offset: off, size: size, typ: gitType(typ)}
		switch typ {
		case objOFSDelta, objREFDelta:
			o.delta = true
			if typ == objOFSDelta {
				if dist <= 0 || dist > off-12 {
					return checksum, hostilef("malformed pack: delta base outside the pack")
				}
				o.baseOff = off - dist
			} else {
				o.baseID = base
			}
			if size > ix.lim.MaxMemory {
				return checksum, limitf("delta of %d bytes is larger than the memory limit", size)
			}
			if err := inflate(&zr, pr, io.Discard, size, buf); err != nil {
				return checksum, err
			}
		default:
			h.start(len(ix.objs), o.typ, size)
			if err := inflate(&zr, pr, h, size, buf); err != nil {
				return checksum, err
			}
			h.end()
		}
		if err := pr.flush(); err != nil {
			return checksum, err
		}
		o.crc = pr.crc.Sum32()
		ix.objs = append(ix.objs, o)
		ix.prog.object()
	}
	if err := pr.flush(); err != nil {
		return checksum, err
	}
	want := pr.sum.Sum(nil)
	if _, err := io.ReadFull(pr, checksum[:]); err != nil {
		return checksum, zerr(err)
	}
	if !bytes.Equal(want, checksum[:]) {
		return checksum, hostilef("malformed pack: checksum mismatch")
	}
	if err := pr.flush(); err != nil { // the trailer, to the file
		return checksum, err
	}
	closed = true
	for _, r := range h.close() {
		o := &ix.objs[r.idx]
		o.id, o.digest, o.done = r.id, r.digest, true
	}
	return checksum, nil
}

// resolve computes the ids (and digests) of deltified objects, reading them
// back from the pack file, one delta tree per task on every core.
func (ix *indexer) resolve(ctx context.Context, packPath string) error {
	deltas := 0
	for i := range ix.objs {
		if ix.objs[i].delta {
			deltas++
		}
	}
	if deltas == 0 {
		return nil
	}
	ix.prog.deltas(int64(deltas))

	// Children lists: OFS children by index, REF children by base id.
	n := len(ix.objs)
	first := make([]int32, n)
	next := make([]int32, n)
	for i := range first {
		first[i], next[i] = -1, -1
	}
	refs := map[plumbing.Hash][]int32{}
	for i := range ix.objs {
		o := &ix.objs[i]
		if !o.delta {
			continue
		}
		if o.baseOff == 0 {
			refs[o.baseID] = append(refs[o.baseID], int32(i))
			continue
		}
		j := sort.Search(i, func(k int) bool { return ix.objs[k].offset >= o.baseOff })
		if j >= i || ix.objs[j].offset != o.baseOff {
			return hostilef("malformed pack: delta base at offset %d is not an object", o.baseOff)
		}
		next[i] = first[j]
		first[j] = int32(i)
	}
	var refMu sync.Mutex
	takeRefs := func(id plumbing.Hash) []int32 {
		if len(refs) == 0 {
			return nil
		}
		refMu.Lock()
		defer refMu.Unlock()
		kids := refs[id]
		delete(refs, id)
		return kids
	}

	var roots []int
	for i := range ix.objs {
		o := &ix.objs[i]
		if o.delta {
			continue
		}
		if first[i] >= 0 {
			roots = append(roots, i)
			continue
		}
		if len(refs) > 0 {
			if _, ok := refs[o.id]; ok {
				roots = append(roots, i)
			}
		}
	}

	workers := min(runtime.GOMAXPROCS(0), max(1, len(roots)))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tasks := make(chan int)
	errs := make(chan error, workers)
	var resolved atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.Open(packPath)
			if err != nil {
				errs <- errorf(ErrCache, "%w", err)
				cancel()
				return
			}
			defer f.Close()
			rv := &resolver{ix: ix, f: f, br: bufio.NewReaderSize(f, 64<<10), buf: make([]byte, 64<<10),
				first: first, next: next, takeRefs: takeRefs, resolved: &resolved}
			for i := range tasks {
				if err := rv.root(ctx, i); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, i := range roots {
		select {
		case tasks <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(tasks)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if got := resolved.Load(); got != int64(deltas) {
		return hostilef("malformed pack: %d of %d deltas have no base in the pack", int64(deltas)-got, deltas)
	}
	return nil
}

// A resolver resolves the delta trees hanging from base objects.
type resolver struct {
	ix       *indexer
	f        *os.File
	br       *bufio.Reader
	zr       io.ReadCloser
	buf      []byte
	first    []int32
	next     []int32
	takeRefs func(plumbing.Hash) []int32
	resolved *atomic.Int64
}

func (rv *resolver) acquire(n int64) error {
	if rv.ix.held.Add(n) > rv.ix.lim.MaxMemory {
		rv.ix.held.Add(-n)
		return limitf("resolving deltas needs more than %d bytes of memory", rv.ix.lim.MaxMemory)
	}
	return nil
}

func (rv *resolver) release(n int64) { rv.ix.held.Add(-n) }

// read inflates the entry at offset, which must hold size inflated bytes.
func (rv *resolver) read(offset, size int64) ([]byte, error) {
	if _, err := rv.f.Seek(offset, io.SeekStart); err != nil {
		return nil, errorf(ErrCache, "%w", err)
	}
	rv.br.Reset(rv.f)
	if _, _, _, _, err := readEntryHeader(rv.br); err != nil {
		return nil, zerr(err)
	}
	out := bytes.NewBuffer(make([]byte, 0, size))
	if err := inflate(&rv.zr, rv.br, out, size, rv.buf); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (rv *resolver) root(ctx context.Context, i int) error {
	o := &rv.ix.objs[i]
	if err := rv.acquire(o.size); err != nil {
		return err
	}
	data, err := rv.read(o.offset, o.size)
	if err != nil {
		rv.release(o.size)
		return err
	}
	return rv.descend(ctx, i, data, o.size, 0)
}

// descend resolves every child of parent, whose content is data, and their
// children in turn. It releases held, the memory counted for data, before it
// returns.
func (rv *resolver) descend(ctx context.Context, parent int, data []byte, held int64, depth int) error {
	defer func() { rv.release(held) }()
	if depth > 10000 {
		return hostilef("malformed pack: delta chain deeper than 10000")
	}
	p := &rv.ix.objs[parent]
	var kids []int32
	for k := rv.first[parent]; k >= 0; k = rv.next[k] {
		kids = append(kids, k)
	}
	kids = append(kids, rv.takeRefs(p.id)...)
	for n, k := range kids {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := &rv.ix.objs[k]
		if err := rv.acquire(c.size); err != nil {
			return err
		}
		delta, err := rv.read(c.offset, c.size)
		if err != nil {
			rv.release(c.size)
			return err
		}
		src, dst, err := deltaSizes(delta)
		if err == nil && src != int64(len(data)) {
			err = hostilef("malformed pack: delta expects a base of %d bytes, base has %d", src, len(data))
		}
		if err == nil && rv.ix.inflated.Add(dst) > rv.ix.lim.MaxBytes {
			err = limitf("pack unpacks to more than %d bytes", rv.ix.lim.MaxBytes)
		}
		if err == nil {
			err = rv.acquire(dst)
		}
		if err != nil {
			rv.release(c.size)
			return err
		}
		out, err := packfile.PatchDelta(data, delta)
		rv.release(c.size)
		if err != nil {
			rv.release(dst)
			return hostilef("malformed pack: %v", err)
		}
		if int64(len(out)) != dst {
			rv.release(dst)
			return hostilef("malformed pack: delta result has %d bytes, header says %d", len(out), dst)
		}
		c.typ = p.typ
		c.size = int64(len(out))
		c.id = objectID(c.typ, out)
		if c.typ == plumbing.BlobObject {
			c.digest = sha256.Sum256(out)
		}
		c.done = true
		rv.resolved.Add(1)
		rv.ix.prog.delta()
		if n == len(kids)-1 {
			// The last child no longer needs the parent's content.
			data = nil
			rv.release(held)
			held = 0
		}
		if err := rv.descend(ctx, int(k), out, dst, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// deltaSizes returns the base and result sizes a delta declares.
func deltaSizes(delta []byte) (src, dst int64, err error) {
	read := func() (int64, error) {
		var v int64
		for shift := uint(0); ; shift += 7 {
			if len(delta) == 0 || shift > 56 {
				return 0, hostilef("malformed pack: bad delta header")
			}
			c := delta[0]
			delta = delta[1:]
			v |= int64(c&0x7f) << shift
			if c&0x80 == 0 {
				return v, nil
			}
		}
	}
	if src, err = read(); err != nil {
		return 0, 0, err
	}
	if dst, err = read(); err != nil {
		return 0, 0, err
	}
	return src, dst, nil
}

// objectID returns the git id of an object of type t with content data.
func objectID(t plumbing.ObjectType, data []byte) plumbing.Hash {
	h := plumbing.NewHasher(t, int64(len(data)))
	h.Write(data)
	return h.Sum()
}

// sums returns the digests of the pack's blobs, sorted by id, one per id.
func (ix *indexer) sums() []blobSum {
	var s []blobSum
	for i := range ix.objs {
		o := &ix.objs[i]
		if o.typ == plumbing.BlobObject {
			s = append(s, blobSum{id: o.id, digest: o.digest, size: o.size})
		}
	}
	slices.SortFunc(s, func(a, b blobSum) int { return bytes.Compare(a.id[:], b.id[:]) })
	return slices.CompactFunc(s, func(a, b blobSum) bool { return a.id == b.id })
}

func (ix *indexer) encodeIdx(w io.Writer, checksum plumbing.Hash) error {
	iw := new(idxfile.Writer)
	iw.OnHeader(uint32(len(ix.objs)))
	for i := range ix.objs {
		o := &ix.objs[i]
		if !o.done {
			return hostilef("malformed pack: object at %d unresolved", o.offset)
		}
		iw.Add(o.id, uint64(o.offset), o.crc)
	}
	if err := iw.OnFooter(checksum); err != nil {
		return fmt.Errorf("vcs: building pack index: %w", err)
	}
	idx, err := iw.Index()
	if err != nil {
		return fmt.Errorf("vcs: building pack index: %w", err)
	}
	if _, err := idxfile.NewEncoder(w).Encode(idx); err != nil {
		return fmt.Errorf("vcs: encoding pack index: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return errorf(ErrCache, "%w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return errorf(ErrCache, "%w", werr)
	}
	return nil
}
