package difytest

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultVersion is the Dify release a new Server imitates: the newest
// release whose behaviour was checked against Dify's tags.
const DefaultVersion = "1.14.1"

// Era names a stretch of Dify releases with the same run-detail endpoint
// (the table in docs/dify-releases.md). The truth is the release
// ([Server.SetServerVersion]); an Era only picks a representative one.
// The zero value is the newest.
type Era int

const (
	// EraNewest (E, 1.14.0 on): pydantic WorkflowRunResponse; unknown
	// run 404 not_found; outputs an object. Represented by 1.14.1.
	EraNewest Era = iota
	// EraD (1.13.1–1.13.3): unknown run 404 not_found; outputs an
	// object. Represented by 1.13.3.
	EraD
	// EraC (1.7.0–1.12.1): app-scoped lookup, unknown run 200 with every
	// field null, outputs a raw JSON string. Represented by 1.9.0 (log
	// rows written at finish, end-user type "service_api").
	EraC
	// EraB (1.2.0–1.6.0): int timestamps, lookup not app-scoped.
	// Represented by 1.6.0.
	EraB
	// EraA (0.6.15–1.1.3): RFC-822 times in the run detail, workflow
	// apps only, lookup not app-scoped. Represented by 1.1.3.
	EraA
)

var eraVersions = [...]string{EraNewest: DefaultVersion, EraD: "1.13.3", EraC: "1.9.0", EraB: "1.6.0", EraA: "1.1.3"}

func (e Era) String() string {
	switch e {
	case EraNewest:
		return "newest"
	case EraD:
		return "D"
	case EraC:
		return "C"
	case EraB:
		return "B"
	case EraA:
		return "A"
	}
	return fmt.Sprintf("Era(%d)", int(e))
}

// Version is the release that represents e ([DefaultVersion] for an
// unknown Era).
func (e Era) Version() string {
	if e < 0 || int(e) >= len(eraVersions) {
		return DefaultVersion
	}
	return eraVersions[e]
}

// release is a parsed "MAJOR.MINOR.PATCH[suffix]".
type release struct {
	major, minor, patch int
	newest              bool // unparsable: behaves as the newest release
}

// parseRelease reads a Dify version such as "1.13.0" or "1.13.0-fix1"
// (an optional leading "v" and anything after the patch number are
// ignored). Anything else behaves as the newest release.
func parseRelease(v string) release {
	s := strings.TrimPrefix(strings.TrimSpace(v), "v")
	var n [3]int
	for i := range n {
		j := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		x, err := strconv.Atoi(s[:j])
		if err != nil {
			return release{newest: true}
		}
		n[i], s = x, s[j:]
		if i < 2 {
			if !strings.HasPrefix(s, ".") {
				return release{newest: true}
			}
			s = s[1:]
		}
	}
	return release{major: n[0], minor: n[1], patch: n[2]}
}

// atLeast reports whether r is major.minor.patch or later.
func (r release) atLeast(major, minor, patch int) bool {
	if r.newest {
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

// unknownRun is how a release answers a run id it does not find.
type unknownRun int

const (
	unknownNull200 unknownRun = iota // marshal of None: 200, every field null
	unknown500                       // 1.13.0: the marshal of None raises
	unknown404                       // not_found "Workflow run not found."
)

// behaviour is what a release does, derived once from its version
// (docs/dify-releases.md).
type behaviour struct {
	runRoute       bool // GET /workflows/run/{id} exists (0.6.15, #6411)
	logsRoute      bool // GET /workflows/logs exists (0.8.2, #8323)
	timeFilters    bool // created_at__before/__after honoured (1.0.1, #14271)
	userFilters    bool // session and account filters (1.5.0)
	exceptions     bool // workflow_run.exceptions_count (0.14.0)
	triggeredFrom  bool // triggered_from and details; end-user type "service-api" (1.10.0)
	logAtStart     bool // log row at the first start, else at finish (1.11.0, #28701)
	rfc822         bool // run detail times are RFC-822 strings (before 1.2.0, #16821)
	fullInfo       bool // /info has tags, mode, author_name (from 1.2.0 here)
	advancedChat   bool // run detail accepts advanced-chat keys (1.3.1, #18758)
	appScoped      bool // run lookup filtered by the key's app (1.7.0, #21458)
	flaskRestx     bool // WWW-Authenticate on 401, "status" in the unhandled 500 (1.8.0, #24310)
	pySpacing      bool // flask_restful json.dumps spacing (before 1.7.0)
	nullCountsZero bool // the all-null body has total_steps/total_tokens 0 (1.x flask_restful)
	unknown        unknownRun
	outputsObject  bool // outputs an object, {} while paused or none (1.13.0)
	pauses         bool // runs really pause (Human Input, 1.13.0)
}

func behaviourOf(version string) behaviour {
	r := parseRelease(version)
	b := behaviour{
		runRoute:       r.atLeast(0, 6, 15),
		logsRoute:      r.atLeast(0, 8, 2),
		timeFilters:    r.atLeast(1, 0, 1),
		userFilters:    r.atLeast(1, 5, 0),
		exceptions:     r.atLeast(0, 14, 0),
		triggeredFrom:  r.atLeast(1, 10, 0),
		logAtStart:     r.atLeast(1, 11, 0),
		rfc822:         !r.atLeast(1, 2, 0),
		fullInfo:       r.atLeast(1, 2, 0),
		advancedChat:   r.atLeast(1, 3, 1),
		appScoped:      r.atLeast(1, 7, 0),
		flaskRestx:     r.atLeast(1, 8, 0),
		pySpacing:      !r.atLeast(1, 7, 0),
		nullCountsZero: r.atLeast(1, 0, 0) && !r.atLeast(1, 8, 0),
		outputsObject:  r.atLeast(1, 13, 0),
		pauses:         r.atLeast(1, 13, 0),
	}
	switch {
	case r.atLeast(1, 13, 1):
		b.unknown = unknown404
	case r.atLeast(1, 13, 0):
		b.unknown = unknown500
	}
	return b
}
