package client

import (
	"regexp"
	"strings"
)

// keyLike matches a word shaped like an API key: Dify's app- and dataset-
// keys (letters and digits) and sk- keys (OpenAI style, which some gateways
// in front of Dify use), from six characters after the prefix, so that a
// short or cut-off key is caught too. isKey then tells a key from a name
// such as "app-translator".
var keyLike = regexp.MustCompile(`(app-|dataset-)[A-Za-z0-9]{6,}|sk-[A-Za-z0-9_-]{6,}`)

// bearerLike matches an Authorization value quoted back in text.
var bearerLike = regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{6,}`)

// urlLike matches an absolute URL in text, up to a space or quote.
var urlLike = regexp.MustCompile(`\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>\x60]+`)

// redacted replaces a secret in text.
const redacted = "<redacted>"

// redactSlack is how far past what it shows a cut looks for secrets.
const redactSlack = 1024

// isKey reports whether a word keyLike matched is a key: a Dify key is 24
// random letters and digits, so it has a capital or a digit in its first
// characters, which a lower-case name ("app-translator", "sk-learn") has
// not. Over-redacting a word that merely looks like a key is harmless.
func isKey(word string) bool {
	_, rest, _ := strings.Cut(word, "-")
	return strings.ContainsAny(rest, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// RedactKeys hides every secret that text from outside may carry (a refused
// ID, an app name, a server's answer, a configured URL) before it reaches a
// log, a label, an error or a page: key-shaped words (app-, dataset- and
// sk- keys, whole or cut short), Bearer tokens, and the user info, query
// and fragment of URLs. Call it before cutting text short: a cut key is
// harder to recognise.
func RedactKeys(s string) string {
	if !maySecret(s) {
		return s
	}
	s = urlLike.ReplaceAllStringFunc(s, redactURL)
	s = bearerLike.ReplaceAllStringFunc(s, func(b string) string {
		return b[:len("bearer")] + " " + redacted
	})
	return keyLike.ReplaceAllStringFunc(s, func(k string) string {
		if !isKey(k) {
			return k
		}
		return k[:strings.IndexByte(k, '-')+1] + redacted
	})
}

// maySecret reports whether s holds one of the markers every secret
// RedactKeys finds starts with: a cheap test that spares most text the
// regular expressions.
func maySecret(s string) bool {
	if strings.Contains(s, "app-") || strings.Contains(s, "dataset-") || strings.Contains(s, "sk-") || strings.Contains(s, "://") {
		return true
	}
	for i := strings.IndexAny(s, "bB"); i >= 0 && i+len("bearer") <= len(s); {
		if strings.EqualFold(s[i:i+len("bearer")], "bearer") {
			return true
		}
		j := strings.IndexAny(s[i+1:], "bB")
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

// ContainsKey reports whether s holds anything RedactKeys would hide.
func ContainsKey(s string) bool { return RedactKeys(s) != s }

// IsKey reports whether s as a whole is shaped like an API key, as when a
// key is pasted where a name or a path belongs.
func IsKey(s string) bool {
	loc := keyLike.FindStringIndex(s)
	return loc != nil && loc[0] == 0 && loc[1] == len(s) && isKey(s)
}

// window returns the start of s for redaction when only its first n bytes
// or so can be shown: RedactKeys reads about 2 MB a second, too slow for a
// hostile megabyte. It ends at a space or quote, which no key or URL holds,
// so none is split and missed; a first word longer than n is dropped.
func window(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := strings.LastIndexAny(s[:n], " \t\r\n\"'<>`")
	if i < 0 {
		return ""
	}
	return s[:i]
}

// redactURL drops a URL's user info and hides its query and fragment, which
// may carry a key or a password; what remains names where it points.
// Punctuation that ends a sentence stays outside the URL.
func redactURL(u string) string {
	trail := len(u)
	for trail > 0 && strings.IndexByte(".,;:!)]}", u[trail-1]) >= 0 {
		trail--
	}
	u, tail := u[:trail], u[trail:]
	scheme, rest, _ := strings.Cut(u, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		rest = redacted + rest[at:]
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 && i+1 < len(rest) {
		rest = rest[:i+1] + redacted
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q := rest[i+1:]
		frag := ""
		if j := strings.IndexByte(q, '#'); j >= 0 {
			q, frag = q[:j], q[j:]
		}
		if q != "" {
			q = redacted
		}
		rest = rest[:i+1] + q + frag
	}
	return scheme + "://" + rest + tail
}
