package collector

// claims tracks the registered runs Dify has not confirmed yet by the
// client that registered them, so that a full cap makes room at the
// expense of the client holding the most: one client's flood of junk IDs
// evicts its own, never another client's registrations. Its size is
// bounded by the cap: one entry per unverified run, one queue per client
// holding any.
type claims struct {
	by     map[string]string // run ID → client
	queues map[string]*claimQueue
	// holders[n] holds the clients holding n runs, so that the top one is
	// found at once however many clients there are; top is the highest n
	// with any (or lower: it is lowered lazily).
	holders []map[string]struct{}
	top     int
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
	c.move(client, q.held, q.held+1)
	q.held++
}

// move moves client from holders[from] to holders[to] (0: none).
func (c *claims) move(client string, from, to int) {
	if from > 0 {
		if delete(c.holders[from], client); len(c.holders[from]) == 0 {
			c.holders[from] = nil
		}
	}
	if to == 0 {
		return
	}
	for len(c.holders) <= to {
		c.holders = append(c.holders, nil)
	}
	if c.holders[to] == nil {
		c.holders[to] = make(map[string]struct{})
	}
	c.holders[to][client] = struct{}{}
	c.top = max(c.top, to)
}

// remove forgets the claim on id: Dify confirmed it, or it went.
func (c *claims) remove(id string) {
	client, ok := c.by[id]
	if !ok {
		return
	}
	delete(c.by, id)
	q := c.queues[client]
	c.move(client, q.held, q.held-1)
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

// newestAbove returns the newest unverified run of a client holding the
// most, if it holds more than n. The caller evicts or confirms it.
func (c *claims) newestAbove(n int) (string, bool) {
	for c.top > 0 && len(c.holders[c.top]) == 0 {
		c.top--
	}
	if c.top <= n {
		return "", false
	}
	var top string
	for client := range c.holders[c.top] {
		top = client
		break
	}
	q := c.queues[top]
	for i := len(q.ids) - 1; i >= 0; i-- {
		id := q.ids[i]
		q.ids = q.ids[:i]
		if c.by[id] == top {
			return id, true
		}
	}
	return "", false // not reached: held counts live entries
}
