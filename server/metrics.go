package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/log/level"

	"github.com/dify-exporter/dify_exporter/exposition"
)

// DefaultScrapeTimeout applies when a scrape does not say its timeout
// (a curl, say).
const DefaultScrapeTimeout = 10 * time.Second

// DefaultMaxScrapeTimeout is the default bound of the scrape timeout a
// request may ask for (--web.max-scrape-timeout).
const DefaultMaxScrapeTimeout = 2 * time.Minute

// metricsHandler refreshes the exporter within the scrape's timeout, then
// answers with an exposition rendered after the refresh. Waiting for the
// refresh, which overlapping scrapes share, holds no render slot, and
// neither does writing the answer: only rendering it does (see
// exposition.Renderer), so clients that wait long or never read cannot
// keep Prometheus out.
type metricsHandler struct{ c Config }

func (h metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	timeout := RequestedTimeout(r, h.c.MaxScrapeTimeout)
	// The server's read deadline fits the other endpoints; a scrape may
	// wait its whole timeout. (A read deadline that passes mid-handler
	// cancels the request.)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(timeout + h.c.Timeouts.Write))

	ctx, cancel := context.WithTimeout(r.Context(), refreshTimeout(timeout, h.c.TimeoutOffset))
	// A render begun after this scrape arrived serves it: scrapes that
	// share a refresh share its render too, however many wait on it.
	arrived := time.Now()
	h.c.Reloader.SyncFiles()
	h.c.Exporter.Refresh(ctx)
	cancel()
	if r.Context().Err() != nil {
		return // the client is gone: render nothing for it
	}
	e, answer := h.c.Metrics.Exposition(r, arrived)
	if answer == exposition.None {
		http.Error(w, "too many concurrent scrapes and nothing rendered yet; try again", http.StatusServiceUnavailable)
		return
	}
	// Writing gets the write timeout from now, whatever the wait was.
	_ = rc.SetWriteDeadline(time.Now().Add(h.c.Timeouts.Write))
	if err := e.Write(w, time.Now()); err != nil {
		level.Debug(h.c.Logger).Log("msg", "Error writing metrics", "err", err)
	}
}

// RequestedTimeout is the scrape timeout Prometheus sends, at most max; or
// DefaultScrapeTimeout (at most max) when it sends none or one that is
// not a positive number. Like blackbox_exporter's module timeout, max
// bounds what a client can make the exporter wait and hold.
func RequestedTimeout(r *http.Request, max time.Duration) time.Duration {
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		// Compare in seconds: NaN, Inf or days would overflow a Duration.
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			if s >= max.Seconds() {
				return max
			}
			return time.Duration(s * float64(time.Second))
		}
	}
	return min(DefaultScrapeTimeout, max)
}

// refreshTimeout is the scrape timeout minus the offset, as
// blackbox_exporter computes it.
func refreshTimeout(timeout, offset time.Duration) time.Duration {
	if timeout > offset {
		timeout -= offset
	}
	return timeout
}
