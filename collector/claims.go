package collector

import "strings"

// claims tracks the registered runs Dify has not confirmed yet by the
// client that registered them, so that a full cap makes room at the
// expense of the client holding the most: one client's flood of junk IDs
// evicts its own, never another client's registrations. Its size is
// bounded by the cap: one entry per unverified run, one queue per client
// holding any.
type claims struct {
	by     map[string]string // run ID → client
	queues map[string]*claimQueue
}

// claimQueue is one client's unverified runs in registration order. Runs
// confirmed or gone are skipped lazily; held counts the live ones.
type claimQueue struct {
	ids  []string
	held int
}

func newClaims() claims {
	return claims{by: make(map[string]string), queues: make(map[string]*claimQueue)}
}

// held is how many unverified runs client holds.
func (c *claims) held(client string) int {
	if q, ok := c.queues[client]; ok {
		return q.held
	}
	return 0
}

func (c *claims) add(id, client string) {
	q, ok := c.queues[client]
	if !ok {
		q = &claimQueue{}
		c.queues[client] = q
	}
	c.by[id] = client
	q.ids = append(q.ids, id)
	q.held++
}

// remove forgets the claim on id: Dify confirmed it, or it went.
func (c *claims) remove(id string) {
	client, ok := c.by[id]
	if !ok {
		return
	}
	delete(c.by, id)
	q := c.queues[client]
	if q.held--; q.held == 0 {
		delete(c.queues, client)
		return
	}
	if len(q.ids) > 2*q.held+16 {
		q.compact(c.by, client)
	}
}

// compact drops the entries of runs no longer claimed by client, and the
// older entries of a run evicted and registered again.
func (q *claimQueue) compact(by map[string]string, client string) {
	kept := make([]string, q.held)
	seen := make(map[string]bool, q.held)
	n := q.held
	for i := len(q.ids) - 1; i >= 0 && n > 0; i-- {
		if id := q.ids[i]; by[id] == client && !seen[id] {
			seen[id] = true
			n--
			kept[n] = id
		}
	}
	q.ids = kept[n:]
}

// newestAbove returns the newest unverified run of the client holding
// the most (the first such client by name, for a stable choice), if it
// holds more than n. The caller evicts or confirms it.
func (c *claims) newestAbove(n int) (string, bool) {
	var top string
	var tq *claimQueue
	for client, q := range c.queues {
		if tq == nil || q.held > tq.held || q.held == tq.held && strings.Compare(client, top) < 0 {
			top, tq = client, q
		}
	}
	if tq == nil || tq.held <= n {
		return "", false
	}
	for i := len(tq.ids) - 1; i >= 0; i-- {
		id := tq.ids[i]
		tq.ids = tq.ids[:i]
		if c.by[id] == top {
			return id, true
		}
	}
	return "", false // not reached: held counts live entries
}
