package api

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/vcsledger/vcsledger/ledger"
)

// GET /v1/records/{key} is the endpoint clients call most. Its answer is
// written without reflection: the checkpoint, the same for every record
// until the next block, is encoded once per header and certificate, and
// the record and its proof are appended around it. The bytes are exactly
// those json.Marshal writes for the RecordResponse (TestRecordJSON).

// An encodedCheckpoint is the checkpoint of one header and certificate,
// with its JSON.
type encodedCheckpoint struct {
	hdr  ledger.Header
	cert *ledger.Certificate
	cp   Checkpoint
	json []byte
}

// checkpointCache holds the encoded checkpoint of the newest header the
// backend answered.
type checkpointCache struct {
	p atomic.Pointer[encodedCheckpoint]
}

// get returns the encoded checkpoint of hdr sealed by cert: the cached one
// when it is of the same header and the same certificate (the backend's
// values are never modified, so the same pointer is the same
// certificate), else a new one, which replaces it.
func (c *checkpointCache) get(hdr *ledger.Header, cert *ledger.Certificate) (*encodedCheckpoint, error) {
	if e := c.p.Load(); e != nil && e.cert == cert && e.hdr == *hdr {
		return e, nil
	}
	e, err := encodeCheckpoint(hdr, cert)
	if err != nil {
		return nil, err
	}
	c.p.Store(e)
	return e, nil
}

// encodeCheckpoint returns the encoded checkpoint of hdr sealed by cert.
func encodeCheckpoint(hdr *ledger.Header, cert *ledger.Certificate) (*encodedCheckpoint, error) {
	cp := NewCheckpoint(hdr, cert)
	data, err := json.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("api: encode checkpoint: %w", err)
	}
	return &encodedCheckpoint{hdr: *hdr, cert: cert, cp: cp, json: data}, nil
}

// A provenRecord is a committed record with its inclusion proof in the
// log of a checkpoint.
type provenRecord struct {
	rec   Record
	proof []ledger.Hash
	cp    *encodedCheckpoint
}

// response returns the RecordResponse of p.
func (p *provenRecord) response() *RecordResponse {
	return &RecordResponse{Record: p.rec, Proof: p.proof, Checkpoint: p.cp.cp}
}

// appendJSON appends the JSON of p.response(), as json.Marshal writes it.
func (p *provenRecord) appendJSON(buf []byte) []byte {
	r := &p.rec
	buf = append(buf, `{"key":`...)
	buf = appendJSONString(buf, r.Key)
	buf = append(buf, `,"repo":`...)
	buf = appendJSONString(buf, r.Repo)
	buf = append(buf, `,"tag":`...)
	buf = appendJSONString(buf, r.Tag)
	buf = append(buf, `,"commit":`...)
	buf = appendJSONString(buf, r.Commit)
	buf = append(buf, `,"tree":`...)
	buf = appendJSONString(buf, r.Tree)
	if r.H1 != "" {
		buf = append(buf, `,"h1":`...)
		buf = appendJSONString(buf, r.H1)
	}
	buf = append(buf, `,"index":`...)
	buf = strconv.AppendInt(buf, r.Index, 10)
	buf = append(buf, `,"height":`...)
	buf = strconv.AppendUint(buf, r.Height, 10)
	buf = append(buf, `,"status":`...)
	buf = appendJSONString(buf, r.Status)
	if r.Confirmations != 0 {
		buf = append(buf, `,"confirmations":`...)
		buf = strconv.AppendUint(buf, r.Confirmations, 10)
	}
	buf = append(buf, `,"proof":`...)
	if p.proof == nil {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, '[')
		for i, h := range p.proof {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '"')
			buf = hex.AppendEncode(buf, h[:])
			buf = append(buf, '"')
		}
		buf = append(buf, ']')
	}
	buf = append(buf, `,"checkpoint":`...)
	buf = append(buf, p.cp.json...)
	return append(buf, '}')
}

// appendJSONString appends s as a JSON string, as json.Marshal writes it:
// text of printable ASCII that needs no escape (keys, hex, statuses)
// directly, anything else through json.Marshal.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			data, _ := json.Marshal(s) // a string always encodes
			return append(buf, data...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// recordBufs recycles the buffers record answers are written in.
var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// writeRecord writes p as the answer, with status, as writeJSON would
// write p.response().
func (s *Server) writeRecord(w http.ResponseWriter, status int, p *provenRecord) {
	bp := recordBufs.Get().(*[]byte)
	buf := append(p.appendJSON((*bp)[:0]), '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf)
	if cap(buf) <= 64<<10 { // a record answer is about 3 KB
		*bp = buf
		recordBufs.Put(bp)
	}
}
