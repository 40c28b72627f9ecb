package exposition

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
)

// gate is a collector whose Collect, once closed, waits to be let through:
// a render that takes as long as a test needs.
type gate struct {
	closed  atomic.Bool
	entered chan struct{}
	open    chan struct{}
}

func (g *gate) Describe(chan<- *prometheus.Desc) {}

func (g *gate) Collect(chan<- prometheus.Metric) {
	if g.closed.Load() {
		g.entered <- struct{}{}
		<-g.open
	}
}

// newGatedRenderer is a Renderer of one run, limited to one render at once.
func newGatedRenderer(t *testing.T) (*Renderer, *gate) {
	t.Helper()
	c := NewCache()
	c.Set(finished("translator", "r1", "succeeded"))
	g := &gate{entered: make(chan struct{}), open: make(chan struct{})}
	reg := prometheus.NewRegistry()
	reg.MustRegister(g)
	return NewRenderer(c, reg, 1, nil), g
}

func get(accept, encoding string) *http.Request {
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", accept)
	req.Header.Set("Accept-Encoding", encoding)
	return req
}

// renderBlocked starts a render that waits in g and returns its result's
// channel once it is waiting.
func renderBlocked(r *Renderer, g *gate, req *http.Request) <-chan *Exposition {
	g.closed.Store(true)
	done := make(chan *Exposition, 1)
	go func() {
		e, _ := r.Exposition(req, time.Now())
		done <- e
	}()
	<-g.entered
	g.closed.Store(false)
	return done
}

// Past the render limit a scrape gets the last exposition its client
// takes, or nothing if none was rendered; the scrapes are counted in the
// next render.
func TestRendererPastTheLimit(t *testing.T) {
	// later is when the scrapes' data is ready: after any render begun.
	later := time.Now().Add(time.Hour)
	r, g := newGatedRenderer(t)
	blocked := renderBlocked(r, g, get("", ""))
	if e, answer := r.Exposition(get("", ""), later); e != nil || answer != None {
		t.Errorf("past the limit with nothing rendered: %v, answer %d; want none", e, answer)
	}
	close(g.open)
	first := <-blocked

	g.open = make(chan struct{})
	textGzip, _ := r.Exposition(get("", "gzip"), time.Now())
	blocked = renderBlocked(r, g, get("", ""))
	for _, tc := range []struct {
		accept, encoding string
		want             *Exposition
	}{
		{"", "", first},
		{"", "gzip", textGzip},
		{"", "zstd", first},                  // the format uncompressed
		{prometheusAccept, "gzip", textGzip}, // the text format
		{prometheusAccept, "", first},
	} {
		e, answer := r.Exposition(get(tc.accept, tc.encoding), later)
		if answer != Last || e != tc.want {
			t.Errorf("past the limit, Accept %q, Accept-Encoding %q: answer %d, %s; want the last, %s",
				tc.accept, tc.encoding, answer, e, tc.want)
		}
	}
	close(g.open)
	<-blocked
	e, answer := r.Exposition(get("", ""), later)
	if answer != Rendered {
		t.Fatalf("below the limit again: answer %d, want a new render", answer)
	}
	if want := "\n" + OverLimitName + " 6\n"; !bytes.Contains(e.Body, []byte(want)) {
		t.Errorf("no %q in\n%s", want, e.Body)
	}
}

// A scrape shares an exposition begun after its data was ready rather
// than render its own.
func TestRendererShares(t *testing.T) {
	r, g := newGatedRenderer(t)
	ready := time.Now()
	blocked := renderBlocked(r, g, get("", "gzip"))
	joined := make(chan *Exposition, 1)
	go func() {
		e, answer := r.Exposition(get("", "gzip"), ready)
		if answer != Shared {
			t.Errorf("joining a render in progress: answer %d, want shared", answer)
		}
		joined <- e
	}()
	// Not the same kind: rendered apart (the limit is one: past it).
	if _, answer := r.Exposition(get("", ""), ready); answer != None {
		t.Errorf("another format while the one render runs: answer %d, want none", answer)
	}
	close(g.open)
	first := <-blocked
	if e := <-joined; e != first {
		t.Errorf("the scrape that joined a render got another exposition")
	}
	if e, answer := r.Exposition(get("", "gzip"), ready); e != first || answer != Shared {
		t.Errorf("data ready before the last render: answer %d, want it shared", answer)
	}
	if e, answer := r.Exposition(get("", "gzip"), time.Now()); e == first || answer != Rendered {
		t.Errorf("data ready after the last render: answer %d, want a new render", answer)
	}
}

func TestExpositionWrite(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		at                     time.Time
		encoding, wantEncoding string
		wantAge                string
	}{
		{now, "identity", "", ""},
		{now.Add(-999 * time.Millisecond), "gzip", "gzip", ""},
		{now.Add(-90 * time.Second), "zstd", "zstd", "90"},
	} {
		e := &Exposition{Format: expfmt.FmtText, Encoding: tc.encoding, Body: []byte("x 1\n"), At: tc.at}
		w := httptest.NewRecorder()
		if err := e.Write(w, now); err != nil {
			t.Fatal(err)
		}
		h := w.Header()
		if h.Get("Content-Encoding") != tc.wantEncoding || h.Get("Age") != tc.wantAge ||
			h.Get("Content-Length") != "4" || w.Body.String() != "x 1\n" {
			t.Errorf("rendered %v before, %s: headers %v, body %q", now.Sub(tc.at), tc.encoding, h, w.Body)
		}
	}
}

func TestOwnFamiliesPassPromlint(t *testing.T) {
	r := NewRenderer(NewCache(), prometheus.NewRegistry(), 0, nil)
	e, _ := r.Exposition(get("", ""), time.Now())
	for _, name := range []string{RenderedTimestampName, OverLimitName} {
		if !bytes.Contains(e.Body, []byte("\n"+name+" ")) {
			t.Errorf("no %s in\n%s", name, e.Body)
		}
	}
	problems, err := promlint.New(strings.NewReader(string(e.Body))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
