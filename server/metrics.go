package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultScrapeTimeout applies when a scrape does not say its timeout
// (a curl, say).
const DefaultScrapeTimeout = 10 * time.Second

// MaxScrapeTimeout bounds the scrape timeout a request may ask for.
const MaxScrapeTimeout = time.Hour

// PromHTTP serves g in every format Prometheus negotiates, gzipped when
// asked; gathering errors are logged and the rest is served.
func PromHTTP(g prometheus.Gatherer, logger log.Logger) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      promErrorLogger{logger},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

type promErrorLogger struct{ logger log.Logger }

func (l promErrorLogger) Println(v ...any) {
	level.Error(l.logger).Log("msg", "Error gathering metrics", "err", fmt.Sprint(v...))
}

// metricsHandler refreshes the exporter within the scrape's timeout, then
// serves the metrics.
type metricsHandler struct {
	c Config
	// slots bounds concurrent scrapes; nil means no bound.
	slots chan struct{}
}

func newMetricsHandler(c Config) metricsHandler {
	h := metricsHandler{c: c}
	if c.MaxRequests > 0 {
		h.slots = make(chan struct{}, c.MaxRequests)
	}
	return h
}

func (h metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.slots != nil {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		default:
			http.Error(w, fmt.Sprintf("too many concurrent scrapes (limit %d); try again", cap(h.slots)), http.StatusServiceUnavailable)
			return
		}
	}
	timeout := RequestedTimeout(r)
	// The server's read and write deadlines fit the other endpoints; a
	// scrape may take its whole timeout and then needs time to write.
	// (A read deadline that passes mid-handler cancels the request.)
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(timeout + h.c.Timeouts.Write)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)

	ctx, cancel := context.WithTimeout(r.Context(), refreshTimeout(timeout, h.c.TimeoutOffset))
	defer cancel()
	h.c.Reloader.SyncFiles()
	h.c.Exporter.Refresh(ctx)
	h.c.Metrics.ServeHTTP(w, r)
}

// RequestedTimeout is the scrape timeout Prometheus sends, or
// DefaultScrapeTimeout when it sends none or one out of bounds.
func RequestedTimeout(r *http.Request) time.Duration {
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		// Ignore what no Prometheus sends (NaN, Inf, days) rather than
		// overflow into an already-expired deadline.
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 && s <= MaxScrapeTimeout.Seconds() {
			return time.Duration(s * float64(time.Second))
		}
	}
	return DefaultScrapeTimeout
}

// refreshTimeout is the scrape timeout minus the offset, as
// blackbox_exporter computes it.
func refreshTimeout(timeout, offset time.Duration) time.Duration {
	if timeout > offset {
		timeout -= offset
	}
	return timeout
}
