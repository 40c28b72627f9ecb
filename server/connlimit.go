package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// ConnLimit bounds the open connections of a server's listeners
// together. At the bound, a new connection takes the place of the
// longest-idle keep-alive connection (as nginx reuses keep-alive slots),
// so that idle clients cannot lock Prometheus out; when every connection
// is busy, new ones wait in the kernel's backlog and take no file
// descriptor. Busy connections end by the server's timeouts.
type ConnLimit struct {
	max int

	mu    sync.Mutex
	open  int
	freed chan struct{}  // signalled when a slot frees
	idle  []*limitedConn // oldest first
}

// NewConnLimit returns a limit of max connections; 0 means none.
func NewConnLimit(max int) *ConnLimit {
	return &ConnLimit{max: max, freed: make(chan struct{}, 1)}
}

// Listener returns l counted against the limit.
func (c *ConnLimit) Listener(l net.Listener) net.Listener {
	if c == nil || c.max <= 0 {
		return l
	}
	return &limitedListener{Listener: l, limit: c}
}

// ConnState is the http.Server hook that tells the limit which
// connections are idle.
func (c *ConnLimit) ConnState(nc net.Conn, s http.ConnState) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	lc, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropIdleLocked(lc)
	if s == http.StateIdle {
		c.idle = append(c.idle, lc)
	}
}

func (c *ConnLimit) dropIdleLocked(lc *limitedConn) {
	for i, x := range c.idle {
		if x == lc {
			c.idle = append(c.idle[:i], c.idle[i+1:]...)
			return
		}
	}
}

// acquire takes a slot, closing the longest-idle connection if none is
// free, else waiting for one; it gives up when done is closed.
func (c *ConnLimit) acquire(done <-chan struct{}) bool {
	for {
		c.mu.Lock()
		if c.open < c.max {
			c.open++
			c.mu.Unlock()
			return true
		}
		var oldest *limitedConn
		if len(c.idle) > 0 {
			oldest = c.idle[0]
			c.idle = c.idle[1:]
		}
		c.mu.Unlock()
		if oldest != nil {
			oldest.Close() // frees its slot now
			continue
		}
		select {
		case <-c.freed:
		case <-done:
			return false
		}
	}
}

func (c *ConnLimit) release(lc *limitedConn) {
	c.mu.Lock()
	c.open--
	c.dropIdleLocked(lc)
	c.mu.Unlock()
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

type limitedListener struct {
	net.Listener
	limit     *ConnLimit
	closeOnce sync.Once
	done      chan struct{}
	initOnce  sync.Once
}

func (l *limitedListener) doneCh() chan struct{} {
	l.initOnce.Do(func() { l.done = make(chan struct{}) })
	return l.done
}

// Accept takes a connection, then its slot: a slot taken beforehand
// would evict an idle connection for one that has not come. While it
// waits for a slot, one accepted connection holds an fd; the rest wait
// in the backlog.
func (l *limitedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.limit.acquire(l.doneCh()) {
		nc.Close()
		return nil, net.ErrClosed
	}
	return &limitedConn{Conn: nc, limit: l.limit}, nil
}

func (l *limitedListener) Close() error {
	l.closeOnce.Do(func() { close(l.doneCh()) })
	return l.Listener.Close()
}

type limitedConn struct {
	net.Conn
	limit *ConnLimit
	once  sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.limit.release(c) })
	return err
}
