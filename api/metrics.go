package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own.
type metrics struct {
	handler  http.Handler
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	append   prometheus.Histogram
	wait     *prometheus.HistogramVec
}

// latencyBuckets span a block interval's worth of waiting: 10 ms to ~5 min.
var latencyBuckets = prometheus.ExponentialBuckets(0.01, 2, 15)

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vcsledger_http_requests_total",
			Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vcsledger_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		append: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vcsledger_append_latency_seconds",
			Help:    "Time from a record's admission to the mempool to its commit.",
			Buckets: latencyBuckets,
		}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vcsledger_http_wait_seconds",
			Help:    "Time POST /v1/records?wait= requests waited, by result (committed or timeout).",
			Buckets: latencyBuckets,
		}, []string{"result"}),
	}
	reg.MustRegister(m.requests, m.duration, m.append, m.wait, chainCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// knownMethods bounds the method label.
var knownMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true}

func (m *metrics) observeRequest(route, method string, code int, d time.Duration) {
	if !knownMethods[method] {
		method = "other"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// chainCollector reads the chain's and the node's figures when scraped.
type chainCollector struct{ s *Server }

var (
	descHeight      = prometheus.NewDesc("vcsledger_height", "Height of the newest committed block.", nil, nil)
	descRecords     = prometheus.NewDesc("vcsledger_records", "Records in the log (its size).", nil, nil)
	descMempool     = prometheus.NewDesc("vcsledger_mempool_records", "Pending records in the mempool.", nil, nil)
	descMempoolB    = prometheus.NewDesc("vcsledger_mempool_bytes", "Size of the pending records.", nil, nil)
	descPeers       = prometheus.NewDesc("vcsledger_peers", "Connected peers.", nil, nil)
	descSyncing     = prometheus.NewDesc("vcsledger_syncing", "1 while the node catches up with its peers.", nil, nil)
	descFetchErrors = prometheus.NewDesc("vcsledger_fetch_errors_total", "Repository fetches that failed.", nil, nil)
	descInvalidMsgs = prometheus.NewDesc("vcsledger_invalid_messages_total", "Invalid messages received from peers.", nil, nil)
	descAppendFails = prometheus.NewDesc("vcsledger_append_failures_total", "Committed blocks the store failed to append.", nil, nil)
	descStalled     = prometheus.NewDesc("vcsledger_stalled", "1 while the node takes no part in consensus after a store failure, resyncing from peers.", nil, nil)
	descHashRate    = prometheus.NewDesc("vcsledger_pow_hash_rate", "pow: headers hashed per second by this node's miner, over the last few seconds.", nil, nil)
	descHashes      = prometheus.NewDesc("vcsledger_pow_hashes_total", "pow: headers hashed by this node's miner.", nil, nil)
	descMined       = prometheus.NewDesc("vcsledger_pow_blocks_mined_total", "pow: blocks this node mined.", nil, nil)
	descSideBlocks  = prometheus.NewDesc("vcsledger_pow_side_blocks", "pow: blocks kept off the main chain.", nil, nil)
)

func (c chainCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHeight, descRecords, descMempool, descMempoolB, descPeers, descSyncing, descFetchErrors, descInvalidMsgs, descAppendFails, descStalled,
		descHashRate, descHashes, descMined, descSideBlocks} {
		ch <- d
	}
}

func (c chainCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.s.readStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descHeight, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descHeight, float64(st.Height))
	gauge(descRecords, float64(st.LogSize))
	gauge(descMempool, float64(st.Mempool))
	gauge(descMempoolB, float64(st.MempoolBytes))
	gauge(descPeers, float64(st.Peers))
	syncing := 0.0
	if st.Syncing {
		syncing = 1
	}
	gauge(descSyncing, syncing)
	counter(descFetchErrors, float64(st.FetchErrors))
	counter(descInvalidMsgs, float64(st.InvalidMessages))
	counter(descAppendFails, float64(st.AppendFailures))
	stalled := 0.0
	if st.Stalled != "" {
		stalled = 1
	}
	gauge(descStalled, stalled)
	if m := st.Mining; m != nil {
		gauge(descHashRate, m.HashRate)
		counter(descHashes, float64(m.Hashes))
		counter(descMined, float64(m.BlocksMined))
		gauge(descSideBlocks, float64(m.SideBlocks))
	}
}
