package api

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// Config configures a Server. The zero value is usable: Validate fills the
// defaults.
type Config struct {
	// WriteToken, when not empty, is the bearer token POST /v1/records
	// requires ("Authorization: Bearer <token>"); reads are always open.
	WriteToken string

	// MaxWait caps POST /v1/records?wait=: a longer wait is cut to MaxWait
	// (the answer is then 202 if the record is still pending). Default 60 s.
	MaxWait time.Duration

	// Timeouts of the http.Server that Serve runs. WriteTimeout must leave
	// room for MaxWait. Defaults: read header 10 s, read 30 s, write
	// MaxWait + 30 s, idle 120 s, shutdown (in-flight requests finishing
	// after the context is cancelled) 30 s.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
}

// Defaults of Config.
const (
	DefaultMaxWait           = 60 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
)

// Validate fills defaults and reports what is wrong.
func (c *Config) Validate() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MaxWait, DefaultMaxWait)
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.WriteTimeout, c.MaxWait+30*time.Second)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.ShutdownTimeout, DefaultShutdownTimeout)
	for _, d := range []time.Duration{c.MaxWait, c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout, c.ShutdownTimeout} {
		if d < 0 {
			return fmt.Errorf("api: negative duration %v in config", d)
		}
	}
	if c.WriteTimeout <= c.MaxWait {
		return fmt.Errorf("api: write timeout %v leaves no room for waits of up to %v", c.WriteTimeout, c.MaxWait)
	}
	if strings.ContainsAny(c.WriteToken, " \t\r\n") {
		return errors.New("api: write token contains white space")
	}
	return nil
}

// A Server answers the HTTP API from a Backend. It is an http.Handler;
// Serve runs it on a listener.
type Server struct {
	cfg     Config
	b       Backend
	store   ledger.Store
	g       *ledger.Genesis
	genesis GenesisInfo
	log     *slog.Logger
	metrics *metrics

	checkpoint checkpointCache // the newest checkpoint, encoded (recordjson.go)

	routes []*route
	exact  map[string]*route

	// drain is cancelled when Serve shuts down, ending ?wait requests so
	// that shutdown does not wait for them.
	drain     context.Context
	drainStop context.CancelFunc
}

// A handler serves one route and method; param is the unescaped rest of
// the path for a route ending in a {wildcard}.
type handler func(w http.ResponseWriter, r *http.Request, param string) error

// A route is a path pattern, written as in the OpenAPI document, and its
// handlers by method. GET handlers also serve HEAD.
type route struct {
	pattern string
	prefix  string // for a pattern ending in a {wildcard}: the text before it
	methods map[string]handler
}

//go:embed openapi.json
var openapiJSON []byte

//go:embed ui
var uiFiles embed.FS

// NewServer returns a Server answering from b. cfg is validated (and its
// defaults filled); logger may be nil (no logs).
func NewServer(cfg Config, b Backend, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, errors.New("api: nil backend")
	}
	g := b.Genesis()
	if g == nil {
		return nil, errors.New("api: backend has no genesis")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:   cfg,
		b:     b,
		store: b.Store(),
		g:     g,
		log:   logger,
		genesis: GenesisInfo{
			Chain: g.Chain, Engine: g.Engine, Hash: g.Hash(), Text: string(g.Format()),
		},
	}
	s.drain, s.drainStop = context.WithCancel(context.Background())
	s.metrics = newMetrics(s)
	s.addRoutes()
	return s, nil
}

func (s *Server) addRoutes() {
	get := func(h handler) map[string]handler { return map[string]handler{http.MethodGet: h} }
	s.routes = []*route{
		{pattern: "/", methods: get(s.getUI)},
		{pattern: "/ui/{file}", methods: get(s.getUIFile)},
		{pattern: "/healthz", methods: get(s.getHealth)},
		{pattern: "/readyz", methods: get(s.getReady)},
		{pattern: "/metrics", methods: get(s.getMetrics)},
		{pattern: "/v1/openapi.json", methods: get(s.getOpenAPI)},
		{pattern: "/v1/records", methods: map[string]handler{http.MethodGet: s.listRecords, http.MethodPost: s.postRecord}},
		{pattern: "/v1/records/{key}", methods: get(s.getRecord)},
		{pattern: "/v1/blocks", methods: get(s.listBlocks)},
		{pattern: "/v1/blocks/{height}", methods: get(s.getBlock)},
		{pattern: "/v1/checkpoint", methods: get(s.getCheckpoint)},
		{pattern: "/v1/proof/consistency", methods: get(s.getConsistency)},
		{pattern: "/v1/proof/inclusion", methods: get(s.getInclusion)},
		{pattern: "/checkpoint", methods: get(s.getNote)},
		{pattern: "/v1/status", methods: get(s.getStatus)},
		{pattern: "/v1/peers", methods: get(s.getPeers)},
		{pattern: "/v1/validators", methods: get(s.getValidators)},
		{pattern: "/v1/authority", methods: map[string]handler{http.MethodGet: s.getAuthority, http.MethodPost: s.postAuthority}},
		{pattern: "/v1/mempool", methods: get(s.getMempool)},
		{pattern: "/v1/evidence", methods: get(s.getEvidence)},
		{pattern: "/v1/genesis", methods: get(s.getGenesis)},
	}
	s.exact = make(map[string]*route)
	for _, rt := range s.routes {
		if i := strings.IndexByte(rt.pattern, '{'); i >= 0 {
			rt.prefix = rt.pattern[:i]
		} else {
			s.exact[rt.pattern] = rt
		}
	}
}

// Routes returns every route the server answers, "METHOD /pattern" with
// patterns as in the OpenAPI document.
func (s *Server) Routes() []string {
	var out []string
	for _, rt := range s.routes {
		for m := range rt.methods {
			out = append(out, m+" "+rt.pattern)
		}
	}
	return out
}

// match finds the route of the request's path and, for a wildcard route,
// the rest of the path, unescaped. The path is not cleaned, so that a key
// such as file:///srv/repo@v1 keeps its slashes, and an escaped slash
// (%2F) in a key reads as a slash.
func (s *Server) match(r *http.Request) (*route, string) {
	if rt := s.exact[r.URL.Path]; rt != nil {
		return rt, ""
	}
	for _, rt := range s.routes {
		if rt.prefix == "" || !strings.HasPrefix(r.URL.Path, rt.prefix) {
			continue
		}
		return rt, r.URL.Path[len(rt.prefix):]
	}
	return nil, ""
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w}
	rt, param := s.match(r)
	name := "other"
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("api: panic serving request", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if rec.status == 0 {
				s.writeError(rec, r, errf(http.StatusInternalServerError, CodeInternal, "internal error"))
			}
		}
		s.metrics.observeRequest(name, r.Method, rec.code(), time.Since(start))
		s.log.Debug("http request", "method", r.Method, "path", r.URL.Path, "route", name,
			"status", rec.code(), "duration", time.Since(start))
	}()
	var err error
	switch {
	case rt == nil:
		err = errf(http.StatusNotFound, CodeNotFound, "no endpoint %.200q; see /v1/openapi.json", r.URL.Path)
	default:
		name = rt.pattern
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		h := rt.methods[method]
		if h == nil {
			w.Header().Set("Allow", allow(rt))
			err = errf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s not allowed on %s (allowed: %s)", r.Method, rt.pattern, allow(rt))
		} else {
			err = h(rec, r, param)
		}
	}
	if err != nil {
		s.writeError(rec, r, err)
	}
}

func allow(rt *route) string {
	var ms []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		if rt.methods[m] != nil || (m == http.MethodHead && rt.methods[http.MethodGet] != nil) {
			ms = append(ms, m)
		}
	}
	return strings.Join(ms, ", ")
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeJSON writes v with status.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("api: encode response: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
	return nil
}

// writeError writes err as an error response; errors that are the
// server's fault are logged with their full text.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, fault := toError(err)
	if fault {
		s.log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "status", e.Status, "err", err)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vcsledger"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	var body errorBody
	body.Error.Code, body.Error.Message = e.Code, e.Message
	s.writeJSON(w, e.Status, body)
}

// authorize checks the bearer token of a write.
func (s *Server) authorize(r *http.Request) error {
	if s.cfg.WriteToken == "" {
		return nil
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.WriteToken)) != 1 {
		return errf(http.StatusUnauthorized, CodeUnauthorized, "this node requires a bearer token for writes")
	}
	return nil
}

// ObserveAppend records the time from a record's admission to the pool to
// its commit in the append latency histogram. The node calls it for every
// record it commits whose admission time it knows.
func (s *Server) ObserveAppend(d time.Duration) { s.metrics.append.Observe(d.Seconds()) }

// Serve serves the API on ln until ctx is cancelled, then shuts down
// gracefully: it stops accepting, ends ?wait requests early (they answer
// 202) and waits up to Config.ShutdownTimeout for in-flight requests. It
// returns nil after a clean shutdown. Serve is called at most once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(s.drainStop)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
		err = fmt.Errorf("api: shutdown: %w", err)
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("api: serve: %w", serr))
	}
	return err
}
