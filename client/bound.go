package client

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// What Dify supplies becomes label values, log values and a web page, so
// every string in an answer is held to the shape Dify really gives it
// before the client returns it: an ID that is not a UUID, or a version that
// is not a version, is a bad answer, not a 10 KB label.

// parseUUID checks that s is a UUID in its canonical 8-4-4-4-12 hex form,
// as all of Dify's IDs are, and returns it lower-cased; what names the
// field in the error.
func parseUUID(what, s string) (string, error) {
	if len(s) != 36 {
		return "", fmt.Errorf("invalid %s %s: want a UUID like fb47b2e6-5e43-4f90-be01-d5c5a088d156", what, quoteID(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", fmt.Errorf("invalid %s %s: want a UUID like fb47b2e6-5e43-4f90-be01-d5c5a088d156", what, quoteID(s))
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", fmt.Errorf("invalid %s %s: want a UUID like fb47b2e6-5e43-4f90-be01-d5c5a088d156", what, quoteID(s))
		}
	}
	return strings.ToLower(s), nil
}

// Unknown stands for a version or mode Dify sent in a shape it never has.
const Unknown = "unknown"

// versionLike is a release as Dify prints it ("1.9.2", "0.15.3-fix1",
// "1.0.0-beta.1"); maxVersionLen bounds it.
var versionLike = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+[-.+\w]*$`)

const maxVersionLen = 32

// parseVersion checks a server_version or X-Version value.
func parseVersion(s string) (string, error) {
	if len(s) > maxVersionLen || !versionLike.MatchString(s) || ContainsKey(s) {
		return "", fmt.Errorf("server version %s is not a release like 1.9.2", quoteShort(s, maxVersionLen))
	}
	return s, nil
}

// serverVersion picks the release from GET /v1/'s server_version, or from
// its X-Version header where the body has none. A value in no release's
// shape is an error, with the header's version, if valid, or Unknown.
func serverVersion(body, header string) (string, error) {
	src, v := "server_version", body
	if v == "" {
		src, v = "X-Version", header
	}
	if v == "" {
		return "", nil
	}
	sv, err := parseVersion(v)
	if err == nil {
		return sv, nil
	}
	if hv, herr := parseVersion(header); herr == nil {
		return hv, fmt.Errorf("%s: %w", src, err)
	}
	return Unknown, fmt.Errorf("%s: %w", src, err)
}

// maxStatusLen bounds a run status: Dify's longest is "partial-succeeded".
const maxStatusLen = 32

// parseStatus checks a run status: a newer Dify may add one, so an unknown
// status is kept if it is shaped like one (a short lower-case word).
func parseStatus(s string) (Status, error) {
	if len(s) > maxStatusLen || !word(s, lower, func(c byte) bool { return lower(c) || digit(c) || c == '_' || c == '-' }) || ContainsKey(s) {
		return "", fmt.Errorf("invalid run status %s", quoteShort(s, maxStatusLen))
	}
	return Status(s), nil
}

// maxWorkflowVersionLen bounds a log row's workflow version: "draft" or
// the time it was published ("2024-01-16 12:20:29.123456").
const maxWorkflowVersionLen = 64

func parseWorkflowVersion(s string) (string, error) {
	alnum := func(c byte) bool { return lower(c) || upper(c) || digit(c) }
	if len(s) > maxWorkflowVersionLen || !word(s, alnum, func(c byte) bool { return alnum(c) || strings.IndexByte(" ._:+-", c) >= 0 }) || ContainsKey(s) {
		return "", fmt.Errorf("invalid workflow version %s: want draft or a timestamp", quoteShort(s, maxWorkflowVersionLen))
	}
	return s, nil
}

// MaxAppNameLen bounds the app name that GET /v1/info reports.
const MaxAppNameLen = 128

// appName keeps an app's name printable, free of the client's key and of
// anything key-shaped, and at most MaxAppNameLen bytes of valid UTF-8.
func (c *Client) appName(s string) string {
	s = window(strings.ToValidUTF8(s, "\uFFFD"), MaxAppNameLen+redactSlack)
	s = RedactKeys(strings.ReplaceAll(s, c.cfg.APIKey, redacted))
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return truncate(s, MaxAppNameLen)
}

// truncate cuts s to at most max bytes on a rune boundary, marking the cut
// with an ellipsis.
func truncate(s string, max int) string {
	const ellipsis = "…"
	if len(s) <= max {
		return s
	}
	end := max - len(ellipsis)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + ellipsis
}

// maxModeLen bounds an app mode.
const maxModeLen = 32

// appMode returns an app's mode, or Unknown if it is not shaped like the
// ones Dify names ("workflow", "advanced-chat", "agent-chat"; a newer Dify
// may add one). An absent mode (Dify before 0.6) stays empty.
func appMode(s string) string {
	if s == "" || len(s) <= maxModeLen && word(s, lower, func(c byte) bool { return lower(c) || c == '-' }) {
		return s
	}
	return Unknown
}

// word reports whether s is non-empty, starts with a byte first accepts
// and goes on with bytes rest accepts. The checks of every log entry use
// it: a regular expression costs ten times as much.
func word(s string, first, rest func(byte) bool) bool {
	if s == "" || !first(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !rest(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) bool { return 'a' <= c && c <= 'z' }
func upper(c byte) bool { return 'A' <= c && c <= 'Z' }
func digit(c byte) bool { return '0' <= c && c <= '9' }
