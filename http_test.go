package main

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestScrapeTimeoutFromHeader(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", defaultScrapeTimeout - 500*time.Millisecond},
		{"10", 9500 * time.Millisecond},
		{"1.5", time.Second},
		{"0.2", 200 * time.Millisecond}, // shorter than the offset: not cut to nothing
		{"0", defaultScrapeTimeout - 500*time.Millisecond},
		{"-3", defaultScrapeTimeout - 500*time.Millisecond},
		{"NaN", defaultScrapeTimeout - 500*time.Millisecond},
		{"+Inf", defaultScrapeTimeout - 500*time.Millisecond},
		{"1e300", defaultScrapeTimeout - 500*time.Millisecond},
		{"9.3e9", defaultScrapeTimeout - 500*time.Millisecond},
		{"ten", defaultScrapeTimeout - 500*time.Millisecond},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tc.header != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := scrapeTimeout(r, 500*time.Millisecond); got != tc.want {
			t.Errorf("header %q: timeout %v, want %v", tc.header, got, tc.want)
		}
	}
}
