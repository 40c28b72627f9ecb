package main

import (
	"strings"
	"testing"
	"time"
)

func TestMaxScrapeTimeoutFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    time.Duration
		wantErr string
	}{
		{nil, 2 * time.Minute, ""},
		{[]string{"--web.max-scrape-timeout=30s"}, 30 * time.Second, ""},
		{[]string{"--web.max-scrape-timeout=0s"}, 0, "--web.max-scrape-timeout must be positive"},
		{[]string{"--web.max-scrape-timeout=-1m"}, 0, "--web.max-scrape-timeout must be positive"},
	} {
		f, err := parseFlags(tc.args)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want %q", tc.args, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case f.maxTimeout != tc.want:
			t.Errorf("%v: %v, want %v", tc.args, f.maxTimeout, tc.want)
		}
	}
}
