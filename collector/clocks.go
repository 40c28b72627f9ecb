package collector

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/go-kit/log/level"

	"github.com/dify-exporter/dify_exporter/client"
)

// Dify's clocks, field by field. Dify forces its processes to UTC, so a
// run's own created_at and finished_at (written by Python) are right
// unless its host's clock is off. A log row's created_at is a database
// default, in the database session's zone: a MySQL/OceanBase metadb not
// in UTC, or PostgreSQL with DB_SESSION_TIMEZONE_OVERRIDE emptied, dates
// every row hours off while the runs' times stay right. So:
//
//   - the host clock is measured from Date headers, believed only when
//     sane and when the runs seen arriving agree, and corrects the runs'
//     times (from a minute up);
//   - the log rows' offset is measured from each entry (its created_at
//     against its own run's time) and only places discovery's window:
//     it never touches a run's times.

const (
	// minSkew is the smallest host clock difference corrected: below it,
	// Date headers' one-second resolution and latency are the noise.
	minSkew = time.Minute
	// maxDateSkew bounds a believable Date header: past it (a Date of
	// 1970, a proxy a day off) the header says nothing of Dify's clock.
	maxDateSkew = 24 * time.Hour
	// commitLag is how late a row may become visible after its run's
	// time: a run first listed after a read began may have started
	// this much before it.
	commitLag = 30 * time.Second
	// dateTolerance is how far the Date header may fall outside what the
	// runs show before it is disbelieved (its one-second resolution).
	dateTolerance = 5 * time.Second
	// rowTolerance is how far one row's offset may stray from its page's
	// before the row's date is judged broken.
	rowTolerance = 2 * time.Minute
	// maxRowsAhead is how far past Dify's clock (in the rows' frame) a
	// row may be dated before it is judged broken.
	maxRowsAhead = time.Hour
	// maxRowsOffset bounds a believable log rows' offset: zones span
	// UTC−12 to UTC+14, and a database host's clock may add a little.
	maxRowsOffset = 15 * time.Hour
	// maxSpanAge is how long what the runs showed of the host clock is
	// kept without new runs arriving.
	maxSpanAge = time.Hour
	// zoneStep is the granularity of time zones, to name the cause.
	zoneStep = 15 * time.Minute
)

// clockState is what the exporter knows of one app's Dify clocks.
type clockState struct {
	// manual, when set, is --dify.time-offset's duration: added to the
	// runs' times instead of the measured correction.
	manual    time.Duration
	hasManual bool
	// noCorrect is --dify.time-offset=0: measure, never correct.
	noCorrect bool

	// date is the host clock minus the exporter's, from the last sane
	// Date header; dateKnown once one came.
	date      time.Duration
	dateKnown bool
	// lo and hi bound the host clock's difference from what the runs
	// seen arriving show (their own times against when the exporter saw
	// them); spanKnown once a refresh had such runs.
	lo, hi    time.Duration
	spanKnown bool
	spanAt    time.Time // the exporter's time of the span's refresh
	// sample collects this refresh's bounds.
	sampleLo, sampleHi time.Duration
	sampled            bool

	// skew is the believed host clock difference; fromDate says it is
	// the Date header's, confirmed or not contradicted by the runs.
	skew      time.Duration
	skewKnown bool
	fromDate  bool

	// rows is the log rows' measured offset from their runs' times;
	// shownRows is rows as last logged and exposed (to the minute).
	rows      time.Duration
	rowsKnown bool
	shownRows time.Duration
	shown     bool
}

func newClockState(cfg AppConfig) clockState {
	switch {
	case !cfg.FixedTimeOffset:
		return clockState{}
	case cfg.TimeOffset == 0:
		return clockState{noCorrect: true}
	default:
		return clockState{manual: cfg.TimeOffset, hasManual: true}
	}
}

// observeDate takes the Date header of an answer received at the
// exporter's time at.
func (c *clockState) observeDate(date, at time.Time) {
	if date.IsZero() {
		return
	}
	skew := date.Sub(at.Truncate(time.Second))
	if skew.Abs() > maxDateSkew {
		return
	}
	// Date has one-second resolution: keep the estimate unless it moves
	// by more, so exported times do not wobble.
	if !c.dateKnown || (skew-c.date).Abs() > 2*time.Second {
		c.date, c.dateKnown = skew, true
	}
}

// observeArrival takes a run first listed in this read (its row newer
// than any before): its own time runTime, on Dify's host clock, fell
// between the previous read (prev, exporter's clock) and now (seen).
func (c *clockState) observeArrival(runTime, prev, seen time.Time) {
	lo, hi := runTime.Sub(seen), runTime.Sub(prev)+commitLag
	if !c.sampled {
		c.sampleLo, c.sampleHi, c.sampled = lo, hi, true
		return
	}
	c.sampleLo, c.sampleHi = max(c.sampleLo, lo), min(c.sampleHi, hi)
}

// endRefresh folds this refresh's sample in and decides what is believed.
// It reports whether the believed skew changed enough to say so.
func (c *clockState) endRefresh(now time.Time) (changed bool) {
	switch {
	case c.sampled && c.sampleLo <= c.sampleHi:
		// One refresh's arrivals that do not agree with each other (a
		// run with a broken time) say nothing.
		c.lo, c.hi, c.spanKnown, c.spanAt = c.sampleLo, c.sampleHi, true, now
	case c.spanKnown && now.Sub(c.spanAt) > maxSpanAge:
		// A clock set right since (NTP stepping it) must not be judged
		// by what a quiet app's runs showed long ago.
		c.spanKnown = false
	}
	c.sampled = false
	prev, prevKnown, prevFromDate := c.skew, c.skewKnown, c.fromDate
	switch {
	case c.dateKnown && (!c.spanKnown || c.date >= c.lo-dateTolerance && c.date <= c.hi+dateTolerance):
		c.skew, c.skewKnown, c.fromDate = c.date, true, true
	case c.spanKnown:
		// The span is a scrape interval wide: to the minute is all it
		// tells.
		c.skew, c.skewKnown, c.fromDate = ((c.lo + c.hi) / 2).Round(time.Minute), true, false
	}
	if !c.skewKnown {
		return false
	}
	return !prevKnown && c.skew.Abs() >= minSkew || prevKnown && prevFromDate != c.fromDate ||
		prevKnown && (c.skew-prev).Abs() >= minSkew
}

// correction is what is added to a run's times to put them on the
// exporter's clock: the host clock's difference, once the Date header
// says it and the runs do not contradict it, or the manual offset.
func (c *clockState) correction() time.Duration {
	switch {
	case c.hasManual:
		return c.manual
	case c.noCorrect || !c.skewKnown || !c.fromDate || c.skew.Abs() < minSkew:
		return 0
	}
	return -c.skew.Round(time.Second)
}

// observeRows takes the offsets of one page's rows from their runs'
// times; their median is the rows' offset (a broken row or two do not
// move it). It reports the offset to judge the page's rows by.
func (c *clockState) observeRows(offsets []time.Duration) (time.Duration, bool) {
	if len(offsets) >= 3 || len(offsets) > 0 && !c.rowsKnown {
		slices.Sort(offsets)
		if m := offsets[(len(offsets)-1)/2]; m.Abs() <= maxRowsOffset {
			c.rows, c.rowsKnown = m, true
		}
	}
	return c.rows, c.rowsKnown
}

// rowsChanged reports whether the rows' offset moved, to the minute, since
// it was last said.
func (c *clockState) rowsChanged() bool {
	if !c.rowsKnown {
		return false
	}
	r := c.rows.Round(time.Minute)
	if c.shown && r == c.shownRows {
		return false
	}
	c.shownRows, c.shown = r, true
	return true
}

// clockNote explains the clocks' state to an operator, or "" when all
// is well.
func (c *clockState) clockNote() string {
	var notes []string
	if c.shown && c.shownRows != 0 {
		notes = append(notes, rowsNote(c.shownRows))
	}
	switch {
	case c.hasManual:
		notes = append(notes, "run times are corrected by "+c.manual.String()+" (--dify.time-offset)")
	case !c.skewKnown || c.skew.Abs() < minSkew:
	case c.fromDate && !c.noCorrect:
		notes = append(notes, "Dify's host clock is "+aheadBehind(c.skew)+" the exporter's: check NTP there; exported run times are corrected")
	case c.fromDate:
		notes = append(notes, "Dify's host clock is "+aheadBehind(c.skew)+" the exporter's: check NTP there; exported run times are not corrected (--dify.time-offset=0)")
	default:
		notes = append(notes, "Dify's host clock is about "+aheadBehind(c.skew)+" the exporter's, as its runs' own times show (the Date header disagrees: a proxy in front with another clock?): check NTP on Dify's host; exported run times are as Dify serves them")
	}
	s := ""
	for i, n := range notes {
		if i > 0 {
			s += "; "
		}
		s += n
	}
	return s
}

func rowsNote(off time.Duration) string {
	late := "late"
	if off < 0 {
		late = "early"
	}
	d := off.Abs()
	if z := d.Round(zoneStep); z != 0 && (d-z).Abs() <= rowTolerance {
		return fmt.Sprintf("log rows are dated %s %s: Dify's database session is not in UTC (a MySQL/OceanBase metadb, or DB_SESSION_TIMEZONE_OVERRIDE emptied); run times are not affected", z, late)
	}
	return fmt.Sprintf("log rows are dated %s %s: the database's clock differs from Dify's API host; run times are not affected", d, late)
}

func aheadBehind(d time.Duration) string {
	if d < 0 {
		return d.Abs().Round(time.Second).String() + " behind"
	}
	return d.Round(time.Second).String() + " ahead of"
}

// logClocks says, once per change, what the clocks show. Call with a.mu
// held, at the end of a refresh.
func (a *App) logClocks() {
	if a.clocks.endRefresh(a.now()) {
		level.Warn(a.logger).Log("msg", "Dify's host clock differs from the exporter's", "skew", a.clocks.skew.Round(time.Second),
			"from_date_header", a.clocks.fromDate, "correction", a.clocks.correction(), "why", a.clocks.clockNote())
	}
	if a.clocks.rowsChanged() && a.clocks.shownRows != 0 {
		level.Warn(a.logger).Log("msg", "Dify's log rows are dated off their runs' times", "offset", a.clocks.shownRows,
			"why", rowsNote(a.clocks.shownRows))
	}
}

// rowJudge decides which log rows' dates can be believed: a row whose
// date is out of any clock's range, strays from its own run's time
// unlike the others on its page, or lies far past Dify's clock is broken;
// it never moves discovery's window.
type rowJudge struct {
	offset    time.Duration // the rows' offset from their runs' times
	hasOffset bool
	latest    time.Time // no row is dated after this (rows' frame)
}

// plausible reports whether a row dated logged, for a run whose own
// times are created and finished, can be believed.
func (j rowJudge) plausible(logged, created, finished time.Time) bool {
	if !client.PlausibleTime(logged) || logged.After(j.latest) {
		return false
	}
	if !j.hasOffset || created.IsZero() {
		return true
	}
	// The row is written at the run's start or at its finish, depending
	// on the release: one of the two must match.
	near := func(t time.Time) bool { return !t.IsZero() && (logged.Sub(t)-j.offset).Abs() <= rowTolerance }
	return near(created) || near(finished)
}

// nanos is a row time in Unix nanoseconds, clamped to what they hold:
// broken dates sort before or after every real one.
func nanos(t time.Time) int64 {
	switch {
	case client.PlausibleTime(t):
		return t.UnixNano()
	case t.Year() < 2000:
		return 1
	}
	return math.MaxInt64
}
