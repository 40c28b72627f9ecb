package difytest

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Fault is a failure injected on an endpoint, imitating the network, a
// proxy or an overloaded Dify. Fields combine: Latency is applied first,
// then Hang, Reset or BodySize if set, else the (faulted or normal)
// response with the header overrides, truncated if Truncate.
type Fault struct {
	// Latency is a delay before answering; it ends early if the client
	// gives up or the server closes.
	Latency time.Duration
	// Hang never answers, until the client gives up (request context
	// done) or the server closes.
	Hang bool
	// Status, if non-zero, is answered with Body, or with a Dify-style
	// envelope for the status if Body is "". Status 200 with Body ""
	// gives the normal response.
	Status int
	Body   string
	// ContentType overrides the response's Content-Type.
	ContentType string
	// RetryAfter is sent as the Retry-After header.
	RetryAfter string
	// Truncate writes the first half of the response (with the full
	// Content-Length) and then closes the connection.
	Truncate bool
	// Reset closes the connection with no response (a TCP reset).
	Reset bool
	// BodySize answers 200 with a JSON-ish body of this many bytes,
	// streamed rather than held in memory.
	BodySize int
	// Times is how many requests the fault applies to; 0 means until
	// cleared.
	Times int
}

type faultState struct {
	f    Fault
	left int
}

// SetFault injects f on endpoint e, replacing any fault there.
func (s *Server) SetFault(e Endpoint, f Fault) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	s.faults[e] = &faultState{f: f, left: f.Times}
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	clear(s.faults)
}

func (s *Server) takeFault(e Endpoint) (Fault, bool) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	st, ok := s.faults[e]
	if !ok {
		return Fault{}, false
	}
	if st.f.Times > 0 {
		st.left--
		if st.left <= 0 {
			delete(s.faults, e)
		}
	}
	return st.f, true
}

func contextWithoutCancel(r *http.Request) context.Context {
	return context.WithoutCancel(r.Context())
}

// abort ends the handler without a response and closes the connection.
func abort() { panic(http.ErrAbortHandler) }

// preFault applies the faults that replace the response entirely. It
// reports whether the request was fully handled.
func (s *Server) preFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	ctx := r.Context()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			abort()
		case <-s.done:
			t.Stop()
			abort()
		}
	}
	switch {
	case f.Hang:
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		abort()
	case f.Reset:
		reset(w)
		return true
	case f.BodySize > 0:
		s.streamBody(w, r, f)
		return true
	}
	return false
}

// reset closes the connection with no response, as abruptly as possible.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		abort()
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		abort()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// streamBody writes a 200 of exactly f.BodySize bytes:
// {"data":"xxxx…"} when it fits, else x's.
func (s *Server) streamBody(w http.ResponseWriter, r *http.Request, f Fault) {
	n := f.BodySize
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if f.ContentType != "" {
		h.Set("Content-Type", f.ContentType)
	}
	if f.RetryAfter != "" {
		h.Set("Retry-After", f.RetryAfter)
	}
	h.Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	const prefix, suffix = `{"data":"`, `"}`
	fill := n
	if n >= len(prefix)+len(suffix) {
		if _, err := w.Write([]byte(prefix)); err != nil {
			return
		}
		fill = n - len(prefix) - len(suffix)
	}
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = 'x'
	}
	for fill > 0 {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		default:
		}
		c := min(fill, len(chunk))
		if _, err := w.Write(chunk[:c]); err != nil {
			return
		}
		fill -= c
	}
	if n >= len(prefix)+len(suffix) {
		_, _ = w.Write([]byte(suffix))
	}
}

// writeTruncated sends the headers (announcing the full length) and the
// first half of the body, then drops the connection.
func writeTruncated(w http.ResponseWriter, resp response) {
	writeHeader(w, resp)
	_, _ = w.Write(resp.body[:len(resp.body)/2])
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	abort()
}
