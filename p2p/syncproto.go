package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/vcsledger/vcsledger/ledger"
)

// The sync protocol, /vcsledger/<chain>/sync/1, is one request and one
// response per stream. The request is one line:
//
//	status\n
//	headers <from> <count>\n
//	blocks <from> <count> <max bytes>\n
//
// with canonical decimal numbers. The response is a sequence of items,
// each "item <length>\n" and that many bytes, ended by "end\n"; or, at any
// point, "error <message>\n" and the stream closes. Items are: for status,
// the head header (ledger.Header.Format; no item when the node has no
// blocks); for headers, consecutive headers from <from>; for blocks,
// consecutive blocks from <from> (ledger.Block.Format, which carries the
// certificate and attestations; read with BlockBytes when the source is a
// BlockBytesSource). A response may hold fewer items than
// asked: the server caps count at its Config.SyncMaxBlocks (headers at
// maxHeadersPerRequest) and the blocks' total size at the smaller of
// <max bytes> and its Config.SyncMaxBytes, but always sends at least the
// first block that exists. No items means the server has no block at
// <from>.
const (
	maxRequestLine       = 80
	maxHeadersPerRequest = 1024
	maxHeaderBytes       = 2048
	maxErrorLine         = 256
	requestReadTimeout   = 10 * time.Second
)

// Request kinds.
const (
	reqStatus  = "status"
	reqHeaders = "headers"
	reqBlocks  = "blocks"
	reqCosigs  = "cosigs" // sync/2 only (cosigsync.go)
)

// A request is a parsed sync request.
type request struct {
	Kind     string
	From     uint64
	Count    int
	MaxBytes int
}

func (r *request) format() []byte {
	switch r.Kind {
	case reqHeaders, reqCosigs:
		return fmt.Appendf(nil, "%s %d %d\n", r.Kind, r.From, r.Count)
	case reqBlocks:
		return fmt.Appendf(nil, "%s %d %d %d\n", r.Kind, r.From, r.Count, r.MaxBytes)
	}
	return []byte(r.Kind + "\n")
}

// parseRequest parses a request line (without its newline) strictly.
func parseRequest(line string) (*request, error) {
	if len(line) > maxRequestLine {
		return nil, fmt.Errorf("%w: request line of %d bytes", ErrProtocol, len(line))
	}
	f := strings.Split(line, " ")
	bad := func(why string) error { return fmt.Errorf("%w: request %q: %s", ErrProtocol, clip(line), why) }
	num := func(s string, max uint64) (uint64, error) {
		n, err := parseUint(s)
		if err != nil || n > max {
			return 0, bad("bad number")
		}
		return n, nil
	}
	r := &request{Kind: f[0]}
	switch {
	case r.Kind == reqStatus && len(f) == 1:
		return r, nil
	case (r.Kind == reqHeaders || r.Kind == reqCosigs) && len(f) == 3, r.Kind == reqBlocks && len(f) == 4:
		var err error
		if r.From, err = num(f[1], 1<<62); err != nil {
			return nil, err
		}
		c, err := num(f[2], 1<<20)
		if err != nil || c == 0 {
			return nil, bad("count out of range")
		}
		r.Count = int(c)
		if r.Kind == reqBlocks {
			mb, err := num(f[3], 1<<40)
			if err != nil || mb == 0 {
				return nil, bad("max bytes out of range")
			}
			r.MaxBytes = int(mb)
		}
		return r, nil
	}
	return nil, bad("unknown request")
}

// responseLimits bound what a client reads.
type responseLimits struct {
	items    int   // at most this many items
	itemSize int   // each at most this many bytes
	total    int64 // all but the first item together at most this many bytes
}

// readResponse reads a response's items. An "error" line becomes a
// *RemoteError (peer filled in by the caller); anything malformed or over
// the limits is ErrProtocol.
func readResponse(r *bufio.Reader, lim responseLimits) ([][]byte, error) {
	var items [][]byte
	var total int64
	for {
		line, err := readLine(r, maxErrorLine)
		if err != nil {
			return nil, err
		}
		if msg, ok := strings.CutPrefix(line, "error "); ok {
			return nil, &RemoteError{Msg: msg}
		}
		if line == "end" {
			return items, nil
		}
		ns, ok := strings.CutPrefix(line, "item ")
		if !ok {
			return nil, fmt.Errorf("%w: response line %q", ErrProtocol, clip(line))
		}
		n, err := parseUint(ns)
		if err != nil || n > uint64(lim.itemSize) {
			return nil, fmt.Errorf("%w: item length %q (limit %d)", ErrProtocol, clip(ns), lim.itemSize)
		}
		if len(items) >= lim.items {
			return nil, fmt.Errorf("%w: more than %d items", ErrProtocol, lim.items)
		}
		if len(items) > 0 {
			total += int64(n)
			if total > lim.total {
				return nil, fmt.Errorf("%w: response over %d bytes", ErrProtocol, lim.total)
			}
		}
		// The first MiB, then, once it has come, the rest at the item's
		// full size: a length alone does not get a large buffer.
		buf := make([]byte, min(n, 1<<20))
		_, err = io.ReadFull(r, buf)
		if err == nil && uint64(len(buf)) < n {
			whole := make([]byte, n)
			copy(whole, buf)
			buf = whole
			_, err = io.ReadFull(r, buf[1<<20:])
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: item %d truncated", ErrProtocol, len(items))
		}
		if err != nil {
			return nil, err
		}
		items = append(items, buf)
	}
}

// readLine reads one "\n"-terminated line of at most max bytes, without
// the newline. A line that is too long or cut short is ErrProtocol; a
// transport error is returned as is.
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return "", fmt.Errorf("%w: truncated", ErrProtocol)
			}
			return "", err
		}
		if c == '\n' {
			return string(b), nil
		}
		if len(b) >= max {
			return "", fmt.Errorf("%w: line over %d bytes", ErrProtocol, max)
		}
		b = append(b, c)
	}
}

// handleSync serves one sync request from a peer that passed the hello.
func (h *Host) handleSync(s network.Stream) {
	p := s.Conn().RemotePeer()
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.SyncTimeout)
	defer cancel()
	if !h.waitVerified(ctx, p) {
		s.Reset()
		return
	}
	s.SetReadDeadline(time.Now().Add(requestReadTimeout))
	line, err := readLine(bufio.NewReaderSize(s, maxRequestLine+1), maxRequestLine)
	var req *request
	if err == nil {
		req, err = parseRequest(line)
	}
	if err == nil && req.Kind == reqCosigs && s.Protocol() != h.sync2ID {
		err = fmt.Errorf("%w: %s request on %s", ErrProtocol, reqCosigs, s.Protocol())
	}
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			h.strike(p, err)
		}
		s.Reset()
		return
	}
	s.SetWriteDeadline(time.Now().Add(h.cfg.SyncTimeout))
	w := bufio.NewWriterSize(s, 64<<10)
	if err := h.serve(ctx, w, req); err != nil {
		h.log.Debug("sync request failed", "peer", p, "request", strings.TrimSpace(string(req.format())), "err", err)
		if ctx.Err() != nil || !errors.Is(err, errServe) {
			s.Reset()
			return
		}
		fmt.Fprintf(w, "error %s\n", clip(strings.ReplaceAll(err.Error(), "\n", " ")))
	} else {
		w.WriteString("end\n")
	}
	if err := w.Flush(); err != nil {
		s.Reset()
		return
	}
	s.Close()
}

// errServe marks errors reported to the client in an "error" line (the
// source failed); other errors from serve are write errors.
var errServe = errors.New("source error")

func (h *Host) serve(ctx context.Context, w *bufio.Writer, req *request) error {
	src := h.cfg.Source
	item := func(data []byte) error {
		if _, err := fmt.Fprintf(w, "item %d\n", len(data)); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
	switch req.Kind {
	case reqStatus:
		head, err := src.Head(ctx)
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("%w: %v", errServe, err)
		}
		return item(head.Format())
	case reqHeaders:
		hs, err := src.Headers(ctx, req.From, min(req.Count, maxHeadersPerRequest))
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("%w: %v", errServe, err)
		}
		for i := range hs {
			if err := item(hs[i].Format()); err != nil {
				return err
			}
		}
		return nil
	case reqCosigs:
		return h.serveCosigs(ctx, item, req)
	}
	blockBytes := func(ctx context.Context, height uint64) ([]byte, error) {
		b, err := src.Block(ctx, height)
		if err != nil {
			return nil, err
		}
		return b.Format(), nil
	}
	if bs, ok := src.(BlockBytesSource); ok {
		blockBytes = bs.BlockBytes
	}
	count := min(req.Count, h.cfg.SyncMaxBlocks)
	budget := min(req.MaxBytes, h.cfg.SyncMaxBytes)
	total := 0
	for i := 0; i < count; i++ {
		data, err := blockBytes(ctx, req.From+uint64(i))
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("%w: %v", errServe, err)
		}
		if i > 0 && total+len(data) > budget {
			return nil
		}
		total += len(data)
		if err := item(data); err != nil {
			return err
		}
	}
	return nil
}

// request sends req to p and reads the response's items.
func (h *Host) request(ctx context.Context, p peer.ID, req *request, lim responseLimits) ([][]byte, error) {
	return h.requestOn(ctx, p, h.syncID, req, lim)
}

// requestOn is request on protocol proto (sync/1 or sync/2).
func (h *Host) requestOn(ctx context.Context, p peer.ID, proto protocol.ID, req *request, lim responseLimits) ([][]byte, error) {
	if !h.waitVerified(ctx, p) {
		return nil, fmt.Errorf("p2p: peer %s: not connected or no hello", p)
	}
	s, err := h.host.NewStream(ctx, p, proto)
	if err != nil {
		return nil, fmt.Errorf("p2p: sync with %s: %w", p, err)
	}
	setDeadline(ctx, s, h.cfg.SyncTimeout)
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if _, err := s.Write(req.format()); err != nil {
		s.Reset()
		return nil, fmt.Errorf("p2p: sync with %s: %w", p, err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return nil, fmt.Errorf("p2p: sync with %s: %w", p, err)
	}
	items, err := readResponse(bufio.NewReaderSize(s, 64<<10), lim)
	if err != nil {
		s.Reset()
		if re, ok := err.(*RemoteError); ok {
			re.Peer = p
			return nil, re
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrProtocol) {
			h.strike(p, err)
		}
		return nil, fmt.Errorf("p2p: sync with %s: %w", p, err)
	}
	s.Close()
	return items, nil
}

// Status asks p for its head header; it returns ledger.ErrNotFound when p
// has no blocks. The peer's known head (Peers) is updated.
func (h *Host) Status(ctx context.Context, p peer.ID) (*ledger.Header, error) {
	items, err := h.request(ctx, p, &request{Kind: reqStatus}, responseLimits{items: 1, itemSize: maxHeaderBytes})
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("p2p: status of %s: %w", p, ledger.ErrNotFound)
	}
	head, err := ledger.ParseHeader(items[0])
	if err != nil {
		h.strike(p, err)
		return nil, fmt.Errorf("p2p: status of %s: %w: %v", p, ErrProtocol, err)
	}
	if head.Chain != h.cfg.Chain {
		err := fmt.Errorf("%w: status of %s: chain %q", ErrProtocol, p, head.Chain)
		h.strike(p, err)
		return nil, err
	}
	h.mu.Lock()
	s := h.peers[p]
	h.mu.Unlock()
	if s != nil {
		s.setHead(head.Height, head.Hash())
	}
	return head, nil
}

// FetchHeaders asks p for up to count headers from height from on. It
// checks that they are consecutive from from, on our chain; it verifies
// no links or seals.
func (h *Host) FetchHeaders(ctx context.Context, p peer.ID, from uint64, count int) ([]ledger.Header, error) {
	count = max(1, min(count, maxHeadersPerRequest))
	items, err := h.request(ctx, p, &request{Kind: reqHeaders, From: from, Count: count},
		responseLimits{items: count, itemSize: maxHeaderBytes, total: int64(count) * maxHeaderBytes})
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Header, len(items))
	for i, data := range items {
		hd, err := ledger.ParseHeader(data)
		if err == nil {
			err = h.checkItem(&hd.Chain, hd.Height, from+uint64(i))
		}
		if err != nil {
			err = fmt.Errorf("p2p: headers from %s: %w: %v", p, ErrProtocol, err)
			h.strike(p, err)
			return nil, err
		}
		out[i] = *hd
	}
	return out, nil
}

// FetchBlocks asks p for up to count blocks from height from on (fewer
// when they exceed the response size caps; none when p has no block at
// from). It parses them and checks that they are consecutive from from,
// on our chain; it verifies no links, logs or seals: ledger.ValidateNext
// does (the Syncer calls it before storing anything).
func (h *Host) FetchBlocks(ctx context.Context, p peer.ID, from uint64, count int) ([]*ledger.Block, error) {
	ps, err := h.fetchParsed(ctx, p, from, count)
	if err != nil {
		return nil, err
	}
	out := make([]*ledger.Block, len(ps))
	for i := range ps {
		out[i] = ps[i].Block
	}
	return out, nil
}

// fetchParsed is FetchBlocks, keeping what the parse learnt for
// ledger.ValidateParsed.
func (h *Host) fetchParsed(ctx context.Context, p peer.ID, from uint64, count int) ([]*ledger.ParsedBlock, error) {
	count = max(1, min(count, maxSyncBlocksPerRequest))
	items, err := h.request(ctx, p, &request{Kind: reqBlocks, From: from, Count: count, MaxBytes: h.cfg.SyncMaxBytes},
		responseLimits{items: count, itemSize: ledger.MaxBlockBytes, total: int64(h.cfg.SyncMaxBytes)})
	if err != nil {
		return nil, err
	}
	out := make([]*ledger.ParsedBlock, len(items))
	for i, data := range items {
		b, err := ledger.ParseBlockLeaves(data)
		items[i] = nil // parsed: its bytes can go
		if err == nil {
			err = h.checkItem(&b.Block.Header.Chain, b.Block.Header.Height, from+uint64(i))
		}
		if err != nil {
			err = fmt.Errorf("p2p: blocks from %s: %w: %v", p, ErrProtocol, err)
			h.strike(p, err)
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (h *Host) checkItem(chain *string, height, want uint64) error {
	switch {
	case *chain != h.cfg.Chain:
		return fmt.Errorf("chain %q", *chain)
	case height != want:
		return fmt.Errorf("height %d, want %d", height, want)
	}
	return nil
}

// BlockHeader parses only the header section of a block encoding
// (ledger.Block.Format), for a cheap look at a block message before its
// records are parsed.
func BlockHeader(data []byte) (*ledger.Header, error) { return blockHeader(data) }
