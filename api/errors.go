package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// Sentinel errors. A *Error matches, with errors.Is, the sentinel of its
// code (see Error.Is); Backend implementations return ErrFull,
// ErrRateLimited, ErrInvalidClaim or ErrUnavailable (wrapped) and the
// server answers with the matching status.
var (
	ErrBadRequest       = errors.New("api: bad request")        // 400
	ErrInvalidClaim     = errors.New("api: invalid claim")      // 400: malformed commit or tree in a submission
	ErrUnauthorized     = errors.New("api: unauthorized")       // 401
	ErrNotFound         = errors.New("api: not found")          // 404
	ErrMethodNotAllowed = errors.New("api: method not allowed") // 405
	ErrTooLarge         = errors.New("api: request too large")  // 413
	ErrRateLimited      = errors.New("api: rate limited")       // 429
	ErrInternal         = errors.New("api: internal error")     // 500
	ErrFull             = errors.New("api: mempool full")       // 503
	ErrUnavailable      = errors.New("api: unavailable")        // 503: not ready, shutting down, store unreadable

	// ErrVerification is wrapped by every error of the Verify functions:
	// what a node answered does not verify.
	ErrVerification = errors.New("api: verification failed")
)

// Error codes, the "code" of an error response.
const (
	CodeBadRequest       = "bad_request"
	CodeInvalidKey       = "invalid_key"
	CodeInvalidClaim     = "invalid_claim"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTooLarge         = "too_large"
	CodeRateLimited      = "rate_limited"
	CodeInternal         = "internal"
	CodeMempoolFull      = "mempool_full"
	CodeUnavailable      = "unavailable"
)

// codeSentinels maps each code to the sentinel a *Error of that code
// matches.
var codeSentinels = map[string]error{
	CodeBadRequest:       ErrBadRequest,
	CodeInvalidKey:       ErrBadRequest,
	CodeInvalidClaim:     ErrInvalidClaim,
	CodeUnauthorized:     ErrUnauthorized,
	CodeNotFound:         ErrNotFound,
	CodeMethodNotAllowed: ErrMethodNotAllowed,
	CodeTooLarge:         ErrTooLarge,
	CodeRateLimited:      ErrRateLimited,
	CodeInternal:         ErrInternal,
	CodeMempoolFull:      ErrFull,
	CodeUnavailable:      ErrUnavailable,
}

// statusSentinels maps a status to a sentinel, for codes this version does
// not know.
var statusSentinels = map[int]error{
	http.StatusBadRequest:            ErrBadRequest,
	http.StatusUnauthorized:          ErrUnauthorized,
	http.StatusNotFound:              ErrNotFound,
	http.StatusMethodNotAllowed:      ErrMethodNotAllowed,
	http.StatusRequestEntityTooLarge: ErrTooLarge,
	http.StatusTooManyRequests:       ErrRateLimited,
	http.StatusInternalServerError:   ErrInternal,
	http.StatusServiceUnavailable:    ErrUnavailable,
}

// An Error is an API error: the server writes it as
// {"error": {"code": ..., "message": ...}} with status Status, and the
// Client returns it for every non-2xx answer.
type Error struct {
	Status     int    // HTTP status
	Code       string // one of the Code* constants
	Message    string
	RetryAfter time.Duration // from a Retry-After header, when the answer had one
}

func (e *Error) Error() string {
	return fmt.Sprintf("api: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is reports whether target is the sentinel of e's code (or, for an
// unknown code, of its status). An invalid_key error also matches
// ledger.ErrInvalidKey and a not_found error ledger.ErrNotFound.
func (e *Error) Is(target error) bool {
	s, ok := codeSentinels[e.Code]
	if !ok {
		s = statusSentinels[e.Status]
	}
	switch {
	case s != nil && target == s:
		return true
	case target == ledger.ErrInvalidKey:
		return e.Code == CodeInvalidKey
	case target == ledger.ErrNotFound:
		return e.Code == CodeNotFound
	}
	return false
}

// A RateLimitError refuses a submission from a submitter over its rate. A
// Backend returns it so that the server can set Retry-After.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("api: rate limited; retry after %v", e.RetryAfter)
}

// Unwrap returns ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// errorBody is the wire form of an Error.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func errf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return errf(http.StatusBadRequest, CodeBadRequest, format, args...)
}

// toError maps an error from a handler, the store or the Backend to the
// Error the client sees, and reports whether it is the server's fault (a
// 500, logged with the error's full text, which the client does not see).
func toError(err error) (e *Error, serverFault bool) {
	var ae *Error
	var rl *RateLimitError
	switch {
	case errors.As(err, &ae):
		return ae, ae.Status == http.StatusInternalServerError
	case errors.Is(err, ledger.ErrInvalidKey):
		return errf(http.StatusBadRequest, CodeInvalidKey, "%v", err), false
	case errors.Is(err, ErrInvalidClaim):
		return errf(http.StatusBadRequest, CodeInvalidClaim, "%v", err), false
	case errors.Is(err, ErrBadRequest):
		return errf(http.StatusBadRequest, CodeBadRequest, "%v", err), false
	case errors.Is(err, ledger.ErrNotFound), errors.Is(err, ErrNotFound):
		return errf(http.StatusNotFound, CodeNotFound, "%v", err), false
	case errors.As(err, &rl):
		return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: err.Error(), RetryAfter: rl.RetryAfter}, false
	case errors.Is(err, ErrRateLimited):
		return errf(http.StatusTooManyRequests, CodeRateLimited, "%v", err), false
	case errors.Is(err, ErrFull):
		return errf(http.StatusServiceUnavailable, CodeMempoolFull, "%v", err), false
	case errors.Is(err, ErrUnavailable):
		return errf(http.StatusServiceUnavailable, CodeUnavailable, "%v", err), false
	case errors.Is(err, ledger.ErrCorrupt):
		// A corrupt store is reported, never served.
		return errf(http.StatusInternalServerError, CodeInternal, "store corrupt; this node cannot serve the request"), true
	}
	return errf(http.StatusInternalServerError, CodeInternal, "internal error"), true
}
