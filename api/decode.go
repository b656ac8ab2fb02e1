package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vcsledger/vcsledger/ledger"
)

// readBody reads a request body of at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body larger than %d bytes", MaxBodyBytes)
	case err != nil:
		return nil, badRequest("reading request body: %v", err)
	}
	return data, nil
}

// decodeStrict decodes data, one JSON object, into v, a pointer to a struct
// of flat fields. It refuses what encoding/json lets through: invalid
// UTF-8 (which it would replace), a field not named exactly as a json tag
// of v (it would match case-insensitively), a repeated field (it would keep
// the last), a value that is not an object, and anything after the object.
func decodeStrict(data []byte, v any) error {
	if !utf8.Valid(data) {
		return badRequest("request body is not valid UTF-8")
	}
	fields := jsonFieldNames(reflect.TypeOf(v).Elem())
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return badRequest("request body is not JSON: %v", syntaxMsg(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return badRequest("request body must be a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badRequest("request body is not JSON: %v", syntaxMsg(err))
		}
		name, _ := tok.(string)
		switch {
		case !fields[name]:
			return badRequest("unknown field %.80q in request body", name)
		case seen[name]:
			return badRequest("field %q repeated in request body", name)
		}
		seen[name] = true
		if err := skipValue(dec); err != nil {
			return badRequest("request body is not JSON: %v", syntaxMsg(err))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return badRequest("request body is not JSON: %v", syntaxMsg(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("trailing data after the JSON object in request body")
	}
	// The shape is checked; now the types.
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest("field %q: want a JSON %s", te.Field, te.Type.Kind())
		}
		return badRequest("request body: %v", err)
	}
	return nil
}

// skipValue reads one JSON value from dec.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

func syntaxMsg(err error) string {
	if err == io.EOF {
		return "empty"
	}
	return err.Error()
}

// jsonFieldNames returns the json names of struct type t's fields.
func jsonFieldNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// parseSubmit decodes and checks a POST /v1/records body.
func parseSubmit(data []byte) (ledger.Key, *Claim, error) {
	var req SubmitRequest
	if err := decodeStrict(data, &req); err != nil {
		return ledger.Key{}, nil, err
	}
	return req.parse()
}

// parse checks a submission and returns its key and claim (nil for none).
func (req *SubmitRequest) parse() (ledger.Key, *Claim, error) {
	for _, v := range []string{req.Key, req.Repo, req.Tag, req.Commit, req.Tree} {
		// encoding/json turns a lone surrogate escape ("\ud800") into
		// U+FFFD; no key or hash has one.
		if strings.ContainsRune(v, utf8.RuneError) {
			return ledger.Key{}, nil, badRequest("request body holds U+FFFD or an invalid \\u escape")
		}
	}
	var (
		key ledger.Key
		err error
	)
	switch {
	case req.Key != "" && (req.Repo != "" || req.Tag != ""):
		return ledger.Key{}, nil, badRequest(`give "key" or "repo" and "tag", not both`)
	case req.Key != "":
		key, err = ledger.ParseKey(req.Key)
	case req.Repo != "" && req.Tag != "":
		key, err = ledger.NewKey(req.Repo, req.Tag)
	case req.Repo != "" || req.Tag != "":
		return ledger.Key{}, nil, badRequest(`give both "repo" and "tag"`)
	default:
		return ledger.Key{}, nil, badRequest(`give "key" or "repo" and "tag"`)
	}
	if err != nil {
		return ledger.Key{}, nil, err
	}
	c := Claim{Commit: req.Commit, Tree: req.Tree}
	if c.IsZero() {
		return key, nil, nil
	}
	if err := c.check(); err != nil {
		return ledger.Key{}, nil, err
	}
	return key, &c, nil
}

// check reports whether the claim's non-empty fields are well formed.
func (c *Claim) check() error {
	if c.Commit != "" {
		if err := ledger.CheckCommit(c.Commit); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidClaim, err)
		}
	}
	if c.Tree != "" {
		rest, ok := strings.CutPrefix(c.Tree, "t1:")
		sum, err := base64.StdEncoding.Strict().DecodeString(rest)
		if !ok || err != nil || len(sum) != 32 {
			return fmt.Errorf("%w: tree %.80q is not t1: followed by base64 of 32 bytes", ErrInvalidClaim, c.Tree)
		}
	}
	return nil
}

// A query is a request's query parameters, checked against the names a
// route accepts: unknown and repeated parameters and malformed escapes are
// refused.
type query struct{ v url.Values }

func parseQuery(r *http.Request, allowed ...string) (query, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return query{}, badRequest("malformed query: %v", err)
	}
	for name, vals := range v {
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		switch {
		case !ok && len(allowed) == 0:
			return query{}, badRequest("query parameter %.80q: this endpoint takes none", name)
		case !ok:
			return query{}, badRequest("unknown query parameter %.80q (want %s)", name, strings.Join(allowed, ", "))
		case len(vals) > 1:
			return query{}, badRequest("query parameter %q repeated", name)
		}
	}
	return query{v}, nil
}

// int returns parameter name as an integer in [lo, hi], or def when absent.
func (q query) int(name string, def, lo, hi int64) (int64, error) {
	s, ok := q.v[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(s[0], 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("query parameter %s=%.40q: want an integer from %d to %d", name, s[0], lo, hi)
	}
	return n, nil
}

// duration returns parameter name as a non-negative duration (Go syntax,
// "30s", or whole seconds, "30"), or 0 when absent.
func (q query) duration(name string) (time.Duration, error) {
	s, ok := q.v[name]
	if !ok {
		return 0, nil
	}
	if n, err := strconv.ParseUint(s[0], 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s[0])
	if err != nil || d < 0 {
		return 0, badRequest("query parameter %s=%.40q: want a duration such as 30s", name, s[0])
	}
	return d, nil
}

// limit returns the "limit" parameter: DefaultPageLimit when absent, 1 to
// MaxPageLimit.
func (q query) limit() (int, error) {
	n, err := q.int("limit", DefaultPageLimit, 1, MaxPageLimit)
	return int(n), err
}
