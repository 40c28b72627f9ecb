package collector

import (
	"math"
	"time"
)

// Dify serves int timestamps as int(naive_utc.timestamp()), which Python
// reads in the API process's local zone: with TZ=Asia/Shanghai every
// served time is 8 h early (docs/dify-releases.md). A Dify host whose
// clock is off shifts them likewise. The estimator measures the shift from
// events the exporter sees as they happen: a run first listed just after
// it started (or, on releases that log at finish, just after it
// finished) happened moments before the exporter saw it.

const (
	// zoneStep is the granularity of time zones; a measured shift is
	// rounded to it, so queueing delays (well under half a step) vanish.
	zoneStep = 15 * time.Minute
	// offsetAgreement is how many refreshes in a row must measure the
	// same shift before it is believed.
	offsetAgreement = 3
)

// offsetEstimator believes a time shift once several refreshes agree.
type offsetEstimator struct {
	fixed    bool // --dify.time-offset set to a duration: no measuring
	offset   time.Duration
	measured bool // offset comes from agreeing samples (or is fixed)
	// candidate is the last rounded sample and how many refreshes in a
	// row gave it.
	candidate time.Duration
	streak    int
	// lag collects this refresh's freshest sample: the smallest apparent
	// age of a new event (the one least delayed).
	lag    time.Duration
	hasLag bool
}

// newOffsetEstimator measures when auto, else applies fixed.
func newOffsetEstimator(auto bool, fixed time.Duration) offsetEstimator {
	if auto {
		return offsetEstimator{}
	}
	return offsetEstimator{fixed: true, offset: fixed, measured: true}
}

// observe takes one new event: served is Dify's time for it, seen the
// exporter's clock when it first saw it.
func (e *offsetEstimator) observe(served, seen time.Time) {
	if e.fixed || served.IsZero() {
		return
	}
	// lag is the shift plus the event's delay, which is never negative:
	// the smallest lag is the least delayed event's, whatever the sign
	// of the shift.
	lag := seen.Sub(served)
	if !e.hasLag || lag < e.lag {
		e.lag, e.hasLag = lag, true
	}
}

// endRefresh folds this refresh's sample into the belief. It reports
// whether the believed offset changed.
func (e *offsetEstimator) endRefresh() bool {
	if e.fixed || !e.hasLag {
		return false
	}
	e.hasLag = false
	rounded := time.Duration(math.Round(float64(e.lag)/float64(zoneStep))) * zoneStep
	if rounded.Abs() > maxZoneOffset {
		return false
	}
	if rounded == e.candidate && e.streak > 0 {
		e.streak++
	} else {
		e.candidate, e.streak = rounded, 1
	}
	if e.streak >= offsetAgreement && (e.candidate != e.offset || !e.measured) {
		changed := e.candidate != e.offset
		e.offset, e.measured = e.candidate, true
		return changed
	}
	return false
}

const (
	// maxZoneOffset bounds a believable shift: zones span UTC−12 to
	// UTC+14; anything larger is an old row, not a zone.
	maxZoneOffset = 14 * time.Hour
	// minSkew is the smallest host clock difference corrected: below it,
	// Date headers' one-second resolution and latency are the noise.
	minSkew = time.Minute
)

// appliedSkew is the host clock difference corrected in exported times.
func (a *App) appliedSkew() time.Duration {
	if !a.server.skewKnown || a.server.skew.Abs() < minSkew {
		return 0
	}
	return a.server.skew.Round(time.Second)
}

// timeOffset is what is added to a time Dify serves to put it on the
// exporter's clock: the zone shift of its API process, less its host's
// clock difference.
func (a *App) timeOffset() time.Duration { return a.tz.offset - a.appliedSkew() }

// difyNow is the exporter's time on Dify's clock (the one the logs'
// created_at filter compares with).
func (a *App) difyNow(t time.Time) time.Time {
	if a.server.skewKnown {
		return t.Add(a.server.skew)
	}
	return t
}

// observeDate takes the Date header of an answer received at the
// exporter's time at.
func (a *App) observeDate(date, at time.Time) {
	if date.IsZero() {
		return
	}
	skew := date.Sub(at.Truncate(time.Second))
	// Date has one-second resolution: keep the estimate unless it moves
	// by more, so exported times do not wobble.
	if !a.server.skewKnown || (skew-a.server.skew).Abs() > 2*time.Second {
		a.server.skew, a.server.skewKnown = skew, true
	}
}

// timeOffsetNote explains a non-zero correction, with its likely cause.
func (a *App) timeOffsetNote() string {
	switch off, skew := a.timeOffset(), a.appliedSkew(); {
	case off == 0:
		return ""
	case a.tz.fixed:
		return "Dify's times are corrected by " + off.String() + " (--dify.time-offset)"
	case skew == 0:
		return "Dify's API container is not in UTC: set TZ=UTC there; until then times are corrected by " + off.String()
	default:
		return "Dify's host clock is off by " + skew.String() + " (check NTP there); times are corrected by " + off.String()
	}
}
