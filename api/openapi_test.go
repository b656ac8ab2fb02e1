package api

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// openapiDoc is the part of an OpenAPI document the tests read.
type openapiDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`
}

type schema struct {
	Type       string            `json:"type"`
	Properties map[string]schema `json:"properties"`
	Required   []string          `json:"required"`
	Ref        string            `json:"$ref"`
}

func loadOpenAPI(t *testing.T) *openapiDoc {
	t.Helper()
	var doc openapiDoc
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json is OpenAPI %q, want 3.x", doc.OpenAPI)
	}
	return &doc
}

func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	s, err := NewServer(Config{}, newEnv(t, Config{}).b, nil)
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	served := s.Routes()
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("routes served and documented differ:\nserved:     %q\ndocumented: %q", served, documented)
	}
}

// jsonFields returns the json names of t's fields (embedded structs
// flattened) and whether each may be omitted.
func jsonFields(t reflect.Type) map[string]bool {
	out := make(map[string]bool)
	for f := range t.Fields() {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		out[name] = strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
	}
	return out
}

func TestOpenAPISchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	schemas := doc.Components.Schemas
	// response schema of an inline list body
	inline := func(path string) schema {
		var op struct {
			Responses map[string]struct {
				Content map[string]struct {
					Schema schema `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		}
		if err := json.Unmarshal(doc.Paths[path]["get"], &op); err != nil {
			t.Fatal(err)
		}
		return op.Responses["200"].Content["application/json"].Schema
	}
	types := map[string]struct {
		s schema
		t reflect.Type
	}{}
	for name, v := range map[string]any{
		"Record": Record{}, "RecordResponse": RecordResponse{}, "Checkpoint": Checkpoint{}, "Block": Block{},
		"HeaderInfo": HeaderInfo{}, "BlocksPage": BlocksPage{}, "RecordsPage": RecordsPage{},
		"SubmitRequest": SubmitRequest{}, "SubmitResponse": SubmitResponse{}, "Claim": Claim{}, "Mismatch": Mismatch{},
		"Attested": Attested{}, "PendingInfo": PendingInfo{}, "Status": Status{}, "Peer": Peer{}, "Validator": Validator{},
		"ValidatorSet": ValidatorSet{}, "Evidence": Evidence{}, "GenesisInfo": GenesisInfo{},
		"ConsistencyProof": ConsistencyProof{}, "InclusionProof": InclusionProof{}, "Error": errorBody{},
		"AuthorityInfo": AuthorityInfo{}, "AuthorityEntry": AuthorityEntry{}, "AuthorityHistory": AuthorityHistory{}, "AuthoritySubmit": AuthoritySubmit{},
	} {
		s, ok := schemas[name]
		if !ok {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		types[name] = struct {
			s schema
			t reflect.Type
		}{s, reflect.TypeOf(v)}
	}
	types["/v1/peers"] = struct {
		s schema
		t reflect.Type
	}{inline("/v1/peers"), reflect.TypeFor[peersBody]()}
	types["/v1/mempool"] = struct {
		s schema
		t reflect.Type
	}{inline("/v1/mempool"), reflect.TypeFor[mempoolBody]()}
	types["/v1/evidence"] = struct {
		s schema
		t reflect.Type
	}{inline("/v1/evidence"), reflect.TypeFor[evidenceBody]()}
	types["/healthz"] = struct {
		s schema
		t reflect.Type
	}{inline("/healthz"), reflect.TypeFor[statusBody]()}

	for name, st := range types {
		fields := jsonFields(st.t)
		var props, goNames, required, goRequired []string
		for p := range st.s.Properties {
			props = append(props, p)
		}
		for f, optional := range fields {
			goNames = append(goNames, f)
			if !optional {
				goRequired = append(goRequired, f)
			}
		}
		required = append(required, st.s.Required...)
		for _, l := range [][]string{props, goNames, required, goRequired} {
			slices.Sort(l)
		}
		if !slices.Equal(props, goNames) {
			t.Errorf("schema %s has properties %q, Go type %s has %q", name, props, st.t, goNames)
		}
		if !slices.Equal(required, goRequired) {
			t.Errorf("schema %s requires %q, Go type %s always has %q", name, required, st.t, goRequired)
		}
	}

	// Every reference resolves.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
				var cur any
				json.Unmarshal(openapiJSON, &cur)
				for _, p := range parts {
					m, _ := cur.(map[string]any)
					cur = m[p]
				}
				if cur == nil {
					t.Errorf("unresolved $ref %s", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var all any
	json.Unmarshal(openapiJSON, &all)
	walk(all)
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	e.c.Status(ctx)
	e.c.Status(ctx)
	e.do(t, "GET", "/nowhere", nil, nil)
	e.s.ObserveAppend(1500 * time.Millisecond)
	text, err := e.c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	gauges := map[string]float64{
		"vcsledger_height":                 3,
		"vcsledger_records":                12,
		"vcsledger_mempool_records":        0,
		"vcsledger_mempool_bytes":          100,
		"vcsledger_peers":                  1,
		"vcsledger_fetch_errors_total":     3,
		"vcsledger_invalid_messages_total": 2,
	}
	for name, want := range gauges {
		f, ok := fams[name]
		if !ok || len(f.Metric) != 1 {
			t.Errorf("metric %s missing", name)
			continue
		}
		m := f.Metric[0]
		got := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if h := fams["vcsledger_append_latency_seconds"]; h == nil || h.Metric[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("append latency histogram: %v", h)
	}
	counts := map[string]float64{}
	for _, m := range fams["vcsledger_http_requests_total"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.Label {
			l[lp.GetName()] = lp.GetValue()
		}
		counts[l["route"]+" "+l["method"]+" "+l["code"]] = m.GetCounter().GetValue()
	}
	if counts["/v1/status GET 200"] != 2 || counts["other GET 404"] != 1 {
		t.Errorf("request counts = %v", counts)
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Errorf("no Go runtime metrics")
	}
}
