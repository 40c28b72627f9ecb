package exposition

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/go-kit/log"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Formats are the formats a scrape can ask for, preferred first: the
// OpenMetrics versions expfmt writes, then the text format, which is also
// the answer to anything else.
var Formats = []expfmt.Format{expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1, expfmt.FmtText}

// GzipLevel is the gzip level of the responses, chosen by measurement
// (see docs/operations.md, Performance).
const GzipLevel = gzip.BestSpeed

// Handler serves one exposition of c's per-run families and g's families,
// rendered for each request, in the format the Accept header prefers
// (Formats) and compressed with gzip or zstd when Accept-Encoding offers
// them. A gather error is logged and what was gathered is served, as
// promhttp.ContinueOnError does.
func Handler(c *Cache, g prometheus.Gatherer, logger log.Logger) http.Handler {
	r := NewRenderer(c, g, 0, logger)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		e, _ := r.Exposition(req, r.now())
		_ = e.Write(w, r.now()) // a client gone away is nothing to report
	})
}

type compressorWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

var compressors = map[string]*sync.Pool{"gzip": &gzipWriters, "zstd": &zstdWriters}

var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, GzipLevel) // a valid level: no error
	return gz
}}

// zstdWriters are zstd encoders as promhttp's zstd package makes them
// (the fastest level), without goroutines of their own.
var zstdWriters = sync.Pool{New: func() any {
	z, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	return z
}}

// encodings are the content encodings served, preferred first on equal
// weight.
var encodings = []string{"gzip", "zstd"}

// negotiateEncoding picks the encoding of highest weight in an
// Accept-Encoding header among encodings, or "identity". An encoding
// named outright is weighed by its own q, others by "*"'s.
func negotiateEncoding(accept string) string {
	named := map[string]float64{}
	star := 0.0
	for part := range strings.SplitSeq(accept, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				q = f
			}
		}
		if name == "*" {
			star = q
		} else {
			named[name] = q
		}
	}
	best, bestQ := "identity", 0.0
	for _, enc := range encodings {
		q, ok := named[enc]
		if !ok {
			q = star
		}
		if q > bestQ {
			best, bestQ = enc, q
		}
	}
	return best
}
