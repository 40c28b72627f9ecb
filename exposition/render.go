package exposition

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// The families a Renderer adds to every exposition.
const (
	// RenderedTimestampName is when the exposition was rendered: an
	// answer served from the last exposition shows its age as the
	// scrape's timestamp minus this.
	RenderedTimestampName = "dify_exporter_exposition_rendered_timestamp_seconds"
	// OverLimitName counts the scrapes answered with the last exposition
	// because the render limit was reached.
	OverLimitName = "dify_exporter_scrapes_over_render_limit_total"
)

// Exposition is one rendered exposition in one format and content
// encoding. It is immutable: any number of clients write it at once.
type Exposition struct {
	Format   expfmt.Format
	Encoding string // "gzip", "zstd" or "identity"
	Body     []byte
	// At is when rendering began: the exposition holds what the
	// exporter had at that moment or later.
	At time.Time
}

// Answer says how an exposition came to answer a scrape.
type Answer int

const (
	// Rendered: rendered for this scrape.
	Rendered Answer = iota
	// Shared: rendered for another scrape after this one's data was
	// ready, so it is as fresh as a render of its own.
	Shared
	// Last: the render limit was reached; the last exposition rendered,
	// which may predate the scrape's refresh.
	Last
	// None: the render limit was reached and nothing was rendered yet.
	None
)

// Renderer renders expositions of a Cache's per-run families and a
// Gatherer's families into memory, so that writing one to a client never
// holds anything another scrape needs. It bounds the renders running at
// once; past the bound a scrape is answered with the last exposition
// rendered. It keeps the last exposition of each format and encoding.
type Renderer struct {
	cache  *Cache
	g      prometheus.Gatherer
	logger log.Logger
	now    func() time.Time
	// slots bounds concurrent renders; nil means no bound.
	slots     chan struct{}
	overLimit atomic.Uint64

	mu       sync.Mutex
	last     map[key]*Exposition
	inflight map[key]*render
}

type key struct {
	format   expfmt.Format
	encoding string
}

// render is a render in progress that scrapes may wait for.
type render struct {
	at   time.Time
	done chan struct{}
	e    *Exposition
}

// NewRenderer returns a Renderer of c's and g's families that runs at most
// maxRenders renders at once (0: no bound).
func NewRenderer(c *Cache, g prometheus.Gatherer, maxRenders int, logger log.Logger) *Renderer {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	r := &Renderer{cache: c, g: g, logger: logger, now: time.Now,
		last: make(map[key]*Exposition), inflight: make(map[key]*render)}
	if maxRenders > 0 {
		r.slots = make(chan struct{}, maxRenders)
	}
	return r
}

// Exposition returns an exposition for req rendered at or after since
// (when the scrape's data was ready): one another scrape is rendering or
// has rendered since then, else a new one. Past the render limit it
// returns the last one of the format and encoding (else of the format
// uncompressed, else in the text format), or nil and None if there is
// none.
func (r *Renderer) Exposition(req *http.Request, since time.Time) (*Exposition, Answer) {
	k := key{expfmt.NegotiateAccept(req.Header, Formats...), negotiateEncoding(req.Header.Get("Accept-Encoding"))}
	r.mu.Lock()
	if e := r.last[k]; e != nil && !e.At.Before(since) {
		r.mu.Unlock()
		return e, Shared
	}
	if p := r.inflight[k]; p != nil && !p.at.Before(since) {
		r.mu.Unlock()
		<-p.done
		return p.e, Shared
	}
	if !r.acquire() {
		defer r.mu.Unlock()
		r.overLimit.Add(1)
		if e := r.lastLike(k); e != nil {
			return e, Last
		}
		return nil, None
	}
	p := &render{at: r.now(), done: make(chan struct{})}
	r.inflight[k] = p
	prev := r.last[k]
	r.mu.Unlock()

	p.e = r.render(k, p.at, prev)
	r.release()
	close(p.done)
	r.mu.Lock()
	if r.inflight[k] == p {
		delete(r.inflight, k)
	}
	if cur := r.last[k]; cur == nil || cur.At.Before(p.at) {
		r.last[k] = p.e
	}
	r.mu.Unlock()
	return p.e, Rendered
}

// lastLike returns the last exposition of k, else of k's format
// uncompressed, else the last in the text format (which every scrape
// takes) in k's encoding or uncompressed. Call with r.mu held.
func (r *Renderer) lastLike(k key) *Exposition {
	if e := r.last[k]; e != nil {
		return e
	}
	if e := r.last[key{k.format, "identity"}]; e != nil {
		return e
	}
	var text *Exposition
	for lk, e := range r.last {
		if lk.format.FormatType() != expfmt.TypeTextPlain {
			continue
		}
		switch lk.encoding {
		case k.encoding:
			return e
		case "identity":
			text = e
		}
	}
	return text
}

func (r *Renderer) acquire() bool {
	if r.slots == nil {
		return true
	}
	select {
	case r.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (r *Renderer) release() {
	if r.slots != nil {
		<-r.slots
	}
}

// render gathers and writes one exposition into memory, sized after the
// previous one of its kind.
func (r *Renderer) render(k key, at time.Time, prev *Exposition) *Exposition {
	mfs, err := r.g.Gather()
	if err != nil {
		level.Error(r.logger).Log("msg", "Error gathering metrics", "err", err)
	}
	mfs = r.withOwnFamilies(mfs, at)
	var buf bytes.Buffer
	if prev != nil {
		buf.Grow(len(prev.Body) + len(prev.Body)/8)
	}
	out, done := compressor(&buf, k.encoding)
	err = r.cache.Write(out, k.format, mfs)
	if cerr := done(); err == nil {
		err = cerr
	}
	if err != nil {
		// Only gathered families that clash with per-run ones, left out.
		level.Error(r.logger).Log("msg", "Error writing metrics", "err", err)
	}
	return &Exposition{Format: k.format, Encoding: k.encoding, Body: buf.Bytes(), At: at}
}

// withOwnFamilies adds the Renderer's families to mfs, keeping them sorted
// by name.
func (r *Renderer) withOwnFamilies(mfs []*dto.MetricFamily, at time.Time) []*dto.MetricFamily {
	for _, fam := range []*dto.MetricFamily{
		family(RenderedTimestampName, "Unix time the exposition was rendered; older than the scrape when the scrape was answered with the last one (see "+OverLimitName+").",
			dto.MetricType_GAUGE, float64(at.UnixNano())/1e9),
		family(OverLimitName, "Scrapes answered with the last rendered exposition because --web.max-requests renders were running.",
			dto.MetricType_COUNTER, float64(r.overLimit.Load())),
	} {
		i, found := slices.BinarySearchFunc(mfs, fam.GetName(), func(m *dto.MetricFamily, name string) int {
			return strings.Compare(m.GetName(), name)
		})
		if found {
			continue // Write reports the duplicate of a per-run family only
		}
		mfs = slices.Insert(mfs, i, fam)
	}
	return mfs
}

func family(name, help string, t dto.MetricType, v float64) *dto.MetricFamily {
	m := &dto.Metric{}
	if t == dto.MetricType_COUNTER {
		m.Counter = &dto.Counter{Value: &v}
	} else {
		m.Gauge = &dto.Gauge{Value: &v}
	}
	return &dto.MetricFamily{Name: &name, Help: &help, Type: t.Enum(), Metric: []*dto.Metric{m}}
}

// Write sends the exposition as the answer to a scrape at now. One not
// rendered at now carries an Age header (whole seconds since it was
// rendered).
func (e *Exposition) Write(w http.ResponseWriter, now time.Time) error {
	h := w.Header()
	h.Set("Content-Type", string(e.Format))
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	if e.Encoding != "identity" {
		h.Set("Content-Encoding", e.Encoding)
	}
	if age := now.Sub(e.At); age >= time.Second {
		h.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(e.Body)))
	_, err := w.Write(e.Body)
	return err
}

// compressor returns a writer that compresses into w with the named
// encoding, and a function that ends it.
func compressor(w io.Writer, encoding string) (io.Writer, func() error) {
	pool, ok := compressors[encoding]
	if !ok {
		return w, func() error { return nil }
	}
	c := pool.Get().(compressorWriter)
	c.Reset(w)
	return c, func() error {
		err := c.Close()
		pool.Put(c)
		return err
	}
}

func (e *Exposition) String() string {
	if e == nil {
		return "none"
	}
	return fmt.Sprintf("%s in %s rendered at %s", e.Format, e.Encoding, e.At.Format(time.RFC3339Nano))
}
