package collector

import (
	"fmt"
	"strconv"
	"strings"
)

// release is a Dify server version as GET /v1/ reports it.
type release struct {
	major, minor, patch int
	known               bool
}

// parseRelease reads "1.13.0", "v1.9.2" or "1.13.0-fix1". Anything else is
// an unknown release, treated as the newest.
func parseRelease(s string) release {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	if i := strings.IndexAny(s, "-+ "); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return release{}
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return release{}
		}
		n[i] = v
	}
	return release{n[0], n[1], n[2], true}
}

// atLeast reports whether r is the release given or later; an unknown
// release counts as the newest.
func (r release) atLeast(major, minor, patch int) bool {
	if !r.known {
		return true
	}
	if r.major != major {
		return r.major > major
	}
	if r.minor != minor {
		return r.minor > minor
	}
	return r.patch >= patch
}

func (r release) String() string {
	if !r.known {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d.%d", r.major, r.minor, r.patch)
}

// visibility is what a Dify release's workflow logs let discovery see
// (docs/dify-releases.md, "log row written").
type visibility int

const (
	// logsAtStart: rows are written when a run starts (1.11.0 on), and
	// each row joins the live run, so re-reading a page refreshes its
	// runs in bulk.
	logsAtStart visibility = iota
	// logsAtFinish: rows are written when a run finishes (0.8.2 to
	// 1.10.1): a run without a row has most likely not finished.
	logsAtFinish
	// noLogs: no workflow logs API (before 0.8.2) or no rows for the app
	// (chatflow apps, in every release).
	noLogs
)

// capabilities is what the exporter may rely on for one app.
type capabilities struct {
	vis visibility
}

// capabilitiesOf derives an app's capabilities from its server release
// and mode.
func capabilitiesOf(r release, mode string) capabilities {
	var c capabilities
	switch {
	case !r.atLeast(0, 8, 2), mode == "advanced-chat":
		c.vis = noLogs
	case !r.atLeast(1, 11, 0):
		c.vis = logsAtFinish
	default:
		c.vis = logsAtStart
	}
	return c
}

// note is the one-line warning an operator needs about what an app's
// release hides from discovery, or "".
func (c capabilities) note(r release, mode string, discovery bool) string {
	switch {
	case !discovery:
		return ""
	case mode == "advanced-chat":
		return "chatflow runs are not listed by Dify's API: use registration or an IDs file"
	case c.vis == noLogs:
		return fmt.Sprintf("Dify %s has no workflow logs API (added in 0.8.2): discovery is off", r)
	case c.vis == logsAtFinish:
		return fmt.Sprintf("on Dify %s runs appear only once they finish (1.11.0 lists them at start): running runs are visible only through registration or an IDs file", r)
	}
	return ""
}
