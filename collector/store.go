package collector

import (
	"errors"
	"hash/fnv"
	"slices"
	"time"

	"github.com/dify-exporter/dify_exporter/client"
)

// Source says how the exporter learnt of a run. A run may have several.
type Source uint8

// Where a tracked run's ID came from (docs/configuration-and-flags.md).
const (
	SourceStatic Source = 1 << iota
	SourceFile
	SourceDiscovered
	SourceRegistered

	// listed sources are the user's own lists: their runs are kept as long
	// as they are listed, outside retention and the cap.
	listed = SourceStatic | SourceFile
	// capped sources count against --runs.max and expire after retention.
	capped = SourceDiscovered | SourceRegistered
)

var sourceNames = []struct {
	s    Source
	name string
}{{SourceStatic, "static"}, {SourceFile, "file"}, {SourceDiscovered, "discovered"}, {SourceRegistered, "registered"}}

// ErrOtherShard is returned when a registered run belongs to another
// replica's shard.
var ErrOtherShard = errors.New("run belongs to another shard: register it with the replica that owns it")

// ErrCapFull is returned when a run cannot be added because the app's cap
// is full of runs that have not finished.
var ErrCapFull = errors.New("run cap reached: every tracked run is still running or paused")

// ErrRefuted is returned when a registered run is one Dify already
// answered 404 for: registering it again costs no call.
var ErrRefuted = errors.New("run refuted: Dify answered 404 for it (it does not exist, or belongs to another app)")

// trackedRun is what the exporter remembers of one run. It is kept small:
// memory per run is a goal (see the benchmarks).
type trackedRun struct {
	run     client.Run
	sources Source
	// known is set once the run's values (with its workflow ID) are known.
	known bool
	// gone is set when Dify said the run does not exist; a listed run
	// stays in the map so that it is not fetched again.
	gone bool
	// stale is set when the last attempt to refresh it failed.
	stale bool
	// freshAt is the refresh generation whose logs already updated it.
	freshAt uint64
	// terminalSince is the exporter's clock when it first saw the run
	// terminal; retention counts from it.
	terminalSince instant
	// loggedAt is the run's log row time (Unix ns), 0 if not discovered.
	loggedAt int64
	// version is the workflow version the logs gave, which maps to the
	// workflow ID the logs lack.
	version string
	// countable is set when the exporter saw the run unfinished, so its
	// finish happens on the exporter's watch.
	countable bool
	// unverified marks a registered run Dify has not confirmed yet (see
	// claims).
	unverified bool
	// rechecks counts detail checks of a run that a logs-at-finish
	// release's logs say has not finished; recheckAt is the next one.
	rechecks  uint8
	recheckAt instant
	// refreshedAt is the exporter's time of the run's last good data; for
	// an unverified run, its registration, so that it queues for its
	// detail call behind the runs refreshed before it.
	refreshedAt instant
	// addedGen is the refresh that added the run: a refresh never
	// evicts a run it added itself (it reads the newest rows first).
	addedGen uint64
	// cached is set while the run is in the run cache (see Collect).
	cached bool
}

// unfinished reports whether the run still needs refreshing.
func (r *trackedRun) unfinished() bool {
	return !r.gone && (!r.known || !r.run.Status.Terminal())
}

// instant is a time in 8 bytes (Unix ns, 0 for none), for the per-run
// fields: memory per run is a goal.
type instant int64

func instantOf(t time.Time) instant {
	if t.IsZero() {
		return 0
	}
	return instant(t.UnixNano())
}

func (i instant) IsZero() bool { return i == 0 }

// Time is the instant as a time.Time, zero for none.
func (i instant) Time() time.Time {
	if i == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(i))
}

// store holds an app's tracked runs. It is not safe for concurrent use:
// the app's lock guards it.
type store struct {
	runs map[string]*trackedRun
	// finished queues capped runs in the order they became terminal, so
	// the oldest terminal run is found in O(1). Entries whose run left or
	// changed are skipped lazily.
	finished []string
	// nCapped counts runs with a capped source and no listed one.
	nCapped int
	max     int
	shard   shardFilter
	// forgotten holds discovered runs that expired, were evicted or
	// counted untracked, with their log time, while the logs may still
	// return them as new: discovery must not bring them back (and count
	// them again).
	forgotten map[string]int64
	// pending holds runs seen unfinished that the cap left untracked,
	// with their log time: their finish is still counted.
	pending map[string]int64
	// claims holds the unverified runs by the client that registered them.
	claims claims
	// refuted holds registered runs Dify answered 404 for, numbered in
	// order (nRefuted is the last number), the older dropped first.
	refuted  map[string]int64
	nRefuted int64
	// uncache lists deleted runs that the run cache still holds.
	uncache []string
	insp    *inspector // notes departures for the run lookup (inspect: hook)
}

func newStore(max int, shard shardFilter) *store {
	return &store{runs: make(map[string]*trackedRun), max: max, shard: shard,
		forgotten: make(map[string]int64), pending: make(map[string]int64),
		claims: newClaims(), refuted: make(map[string]int64)}
}

// maxRefuted bounds the refuted registrations remembered.
func (s *store) maxRefuted() int { return max(1000, 2*s.max) }

// maxRemembered bounds forgotten and pending runs.
func (s *store) maxRemembered() int { return max(100000, 10*s.max) }

// cappedOnly reports whether the run counts against the cap.
func cappedOnly(s Source) bool { return s&capped != 0 && s&listed == 0 }

// add starts tracking id from src, or adds src to a tracked run. It
// returns the run, or nil when the run belongs to another shard. A full
// cap first evicts the oldest terminal run, then the oldest unfinished
// one (runs Dify has not confirmed first: they were never fetched).
// Runs added by refresh gen (non-zero) are not evicted for another.
// Registrations go through register.
func (s *store) add(id string, src Source, gen uint64) (*trackedRun, error) {
	if !s.shard.keeps(id) {
		return nil, nil
	}
	if r, ok := s.runs[id]; ok {
		before := cappedOnly(r.sources)
		r.sources |= src
		s.recount(before, r.sources)
		return r, nil
	}
	if cappedOnly(src) && s.nCapped >= s.max && !s.evictOldestTerminal(gen) && !s.evictOldestUnfinished(gen) {
		return nil, ErrCapFull
	}
	r := &trackedRun{run: client.Run{ID: id}, sources: src, addedGen: gen}
	s.runs[id] = r
	if cappedOnly(src) {
		s.nCapped++
	}
	return r, nil
}

// register tracks a run that client from registered at now. A new run is
// unverified until Dify confirms it, and queues for its detail call by
// registration time. A full cap makes room, in order: another client's
// newest unverified run, if that client holds at least two more than
// from (junk goes first, and a flood cannot crowd out anyone else's
// registrations); the oldest terminal run. Failing both, it is refused:
// running runs are never evicted for a registration.
func (s *store) register(id, from string, now time.Time) (*trackedRun, error) {
	if !s.shard.keeps(id) {
		return nil, nil
	}
	if _, ok := s.runs[id]; ok {
		return s.add(id, SourceRegistered, 0)
	}
	if _, ok := s.refuted[id]; ok {
		return nil, ErrRefuted
	}
	if s.nCapped >= s.max && !s.evictClaimAbove(s.claims.held(from)+1) && !s.evictOldestTerminal(0) {
		return nil, ErrCapFull
	}
	r, err := s.add(id, SourceRegistered, 0)
	if err != nil {
		return nil, err
	}
	r.unverified, r.refreshedAt = true, instantOf(now)
	s.claims.add(id, from)
	return r, nil
}

// evictClaimAbove evicts the newest unverified run of the client holding
// the most, if it holds more than n.
func (s *store) evictClaimAbove(n int) bool {
	for {
		id, ok := s.claims.newestAbove(n)
		if !ok {
			return false
		}
		if cappedOnly(s.runs[id].sources) {
			s.delete(id)
			return true
		}
		// Listed since it was registered: not the cap's to evict, nor
		// its client's to hold.
		s.claims.remove(id)
	}
}

// verified notes that Dify confirmed the run exists.
func (s *store) verified(r *trackedRun) {
	if r.unverified {
		r.unverified = false
		s.claims.remove(r.run.ID)
	}
}

// refute remembers a registered run Dify answered 404 for, so that
// registering it again costs nothing.
func (s *store) refute(id string) {
	if len(s.refuted) >= s.maxRefuted() {
		dropOlderHalf(s.refuted)
	}
	s.nRefuted++
	s.refuted[id] = s.nRefuted
}

// remember notes a run the logs listed that is not tracked: pending if
// its finish is still to be counted, else forgotten.
func (s *store) remember(id string, loggedAt int64, pending bool) {
	m := s.forgotten
	if pending {
		m = s.pending
	}
	if len(m) >= s.maxRemembered() {
		dropOlderHalf(m)
	}
	m[id] = loggedAt
}

func (s *store) isPending(id string) bool {
	_, ok := s.pending[id]
	return ok
}

func (s *store) isForgotten(id string) bool {
	_, ok := s.forgotten[id]
	return ok
}

// removeSource stops tracking id from src; the run goes when no source is
// left.
func (s *store) removeSource(id string, src Source) {
	r, ok := s.runs[id]
	if !ok {
		return
	}
	before := cappedOnly(r.sources)
	r.sources &^= src
	if r.sources == 0 || r.gone && r.sources&listed == 0 {
		s.depart(id, WhyUnlisted, "") // inspect: hook
		s.delete(id)                  // a gone run is kept only while listed
		return
	}
	s.recount(before, r.sources)
	if cappedOnly(r.sources) && !r.terminalSince.IsZero() {
		s.finished = append(s.finished, id)
	}
	// A run that falls under the cap may push it over.
	for s.nCapped > s.max && s.evictOldestTerminal(0) {
	}
}

func (s *store) recount(wasCapped bool, now Source) {
	switch isCapped := cappedOnly(now); {
	case wasCapped && !isCapped:
		s.nCapped--
	case !wasCapped && isCapped:
		s.nCapped++
	}
}

func (s *store) delete(id string) {
	r, ok := s.runs[id]
	if !ok {
		return
	}
	if cappedOnly(r.sources) {
		s.nCapped--
	}
	if r.unverified {
		s.claims.remove(id)
	}
	if r.cached {
		s.uncache = append(s.uncache, id)
	}
	if r.loggedAt != 0 {
		s.remember(id, r.loggedAt, r.countable && !r.run.Status.Terminal() && !r.gone)
	}
	delete(s.runs, id)
}

// forget drops the forgotten runs logged before since: discovery takes no
// untracked row that old as new anyway.
func (s *store) forget(since int64) {
	for id, at := range s.forgotten {
		if at < since {
			delete(s.forgotten, id)
		}
	}
}

// dropOlderHalf keeps a remembered set bounded whatever the logs send.
func dropOlderHalf(m map[string]int64) {
	times := make([]int64, 0, len(m))
	for _, at := range m {
		times = append(times, at)
	}
	slices.Sort(times)
	cut := times[len(times)/2]
	for id, at := range m {
		if at < cut {
			delete(m, id)
		}
	}
}

// markTerminal records when a run was first seen terminal.
func (s *store) markTerminal(id string, r *trackedRun, now time.Time) {
	if !r.terminalSince.IsZero() {
		return
	}
	r.terminalSince = instantOf(now)
	if cappedOnly(r.sources) {
		s.finished = append(s.finished, id)
	}
}

// drop forgets a run that Dify no longer has (or never had: a registered
// one is refuted). A listed run is remembered as gone so that it is not
// fetched again while it stays listed.
func (s *store) drop(id string, r *trackedRun) {
	s.depart(id, WhyNotFound, "") // inspect: hook
	if r.sources&SourceRegistered != 0 {
		s.refute(id)
	}
	if r.sources&listed != 0 {
		r.gone, r.known, r.stale = true, false, false
		return
	}
	s.delete(id)
}

// evictOldestTerminal removes the capped run that became terminal first,
// unless refresh gen (non-zero) added it.
func (s *store) evictOldestTerminal(gen uint64) bool {
	for len(s.finished) > 0 {
		id := s.finished[0]
		r, ok := s.runs[id]
		if ok && cappedOnly(r.sources) && !r.terminalSince.IsZero() {
			if gen != 0 && r.addedGen == gen {
				return false
			}
			s.finished[0] = ""
			s.finished = s.finished[1:]
			s.depart(id, WhyEvicted, "oldest finished run") // inspect: hook
			s.delete(id)
			return true
		}
		s.finished[0] = ""
		s.finished = s.finished[1:]
	}
	s.compactQueue()
	return false
}

// evictLastFinished removes the capped run that became terminal last:
// within a refresh reading the newest rows first, the oldest of them.
func (s *store) evictLastFinished() bool {
	for n := len(s.finished); n > 0; n = len(s.finished) {
		id := s.finished[n-1]
		s.finished = s.finished[:n-1]
		if r, ok := s.runs[id]; ok && cappedOnly(r.sources) && !r.terminalSince.IsZero() {
			s.depart(id, WhyEvicted, "for a newer unfinished run") // inspect: hook
			s.delete(id)
			return true
		}
	}
	return false
}

// evictOldestUnfinished removes the capped run created first (or, for runs
// not fetched yet, any such run), unless refresh gen (non-zero) added it.
func (s *store) evictOldestUnfinished(gen uint64) bool {
	var oldestID string
	var oldest time.Time
	for id, r := range s.runs {
		if !cappedOnly(r.sources) || gen != 0 && r.addedGen == gen {
			continue
		}
		if oldestID == "" || r.run.CreatedAt.Before(oldest) {
			oldestID, oldest = id, r.run.CreatedAt
		}
	}
	if oldestID == "" {
		return false
	}
	s.depart(oldestID, WhyEvicted, "oldest unfinished run") // inspect: hook
	s.delete(oldestID)
	return true
}

// expire removes capped runs terminal for longer than retention. The
// queue is mostly in terminal order, but a run re-queued by removeSource
// is not, so all of it is checked.
func (s *store) expire(now time.Time, retention time.Duration) {
	kept := s.finished[:0]
	queued := make(map[string]bool, len(s.finished))
	for _, id := range s.finished {
		r, ok := s.runs[id]
		if !ok || !cappedOnly(r.sources) || r.terminalSince.IsZero() || queued[id] {
			continue
		}
		if now.Sub(r.terminalSince.Time()) >= retention {
			s.depart(id, WhyExpired, "") // inspect: hook
			s.delete(id)
			continue
		}
		queued[id] = true
		kept = append(kept, id)
	}
	clear(s.finished[len(kept):])
	s.finished = kept
	s.compactQueue()
}

// compactQueue gives back the queue's backing array once it is mostly
// consumed, so that it cannot grow without bound.
func (s *store) compactQueue() {
	if cap(s.finished) > 64 && len(s.finished) < cap(s.finished)/4 {
		s.finished = append([]string(nil), s.finished...)
	}
}

// shardFilter keeps the run IDs that hash to one shard, as
// kube-state-metrics does with object UIDs.
type shardFilter struct{ shard, total uint32 }

func (f shardFilter) keeps(id string) bool {
	if f.total <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()%f.total == f.shard
}

// nKnown counts the runs whose values are known.
func (s *store) nKnown() int {
	n := 0
	for _, r := range s.runs {
		if r.known {
			n++
		}
	}
	return n
}
