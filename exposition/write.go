package exposition

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// snapshot is what a scrape writes: a copy of the runs taken under the
// read lock. The rendered strings are immutable and shared, not copied.
type snapshot struct {
	apps              []appSpan
	runs              []run
	created, finished bool // whether any run has the series
}

type appSpan struct {
	prefix string
	lo, hi int
}

var snapshots = sync.Pool{New: func() any { return new(snapshot) }}

func (c *Cache) snapshot() *snapshot {
	s := snapshots.Get().(*snapshot)
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, a := range c.apps {
		lo := len(s.runs)
		s.runs = append(s.runs, a.runs...)
		s.apps = append(s.apps, appSpan{a.prefix, lo, len(s.runs)})
	}
	for i := range s.runs {
		s.created = s.created || s.runs[i].created != 0
		s.finished = s.finished || s.runs[i].finished != 0
	}
	return s
}

func (s *snapshot) release() {
	clear(s.runs) // drop the strings for the collector
	s.runs, s.apps = s.runs[:0], s.apps[:0]
	s.created, s.finished = false, false
	snapshots.Put(s)
}

// ErrDuplicateFamily is returned by Write for a gathered family that has
// the name of a per-run family; the gathered one is left out.
var ErrDuplicateFamily = errors.New("gathered family duplicates a per-run family")

// Write writes one exposition in format f (the text format or
// OpenMetrics): the cached per-run families and the gathered families mfs
// (sorted by name, as prometheus.Gatherer returns them), merged by name,
// each family once.
func (c *Cache) Write(w io.Writer, f expfmt.Format, mfs []*dto.MetricFamily) error {
	om := false
	switch f.FormatType() {
	case expfmt.TypeTextPlain:
	case expfmt.TypeOpenMetrics:
		om = true
	default:
		return fmt.Errorf("exposition format %q not supported", f)
	}
	s := c.snapshot()
	defer s.release()
	bw := &bufWriter{w: w, b: bufs.Get().(*[]byte)}
	defer bw.release()
	enc := expfmt.NewEncoder(bw, f)
	var errs []error
	j := 0
	for _, fam := range RunFamilies {
		for ; j < len(mfs) && mfs[j].GetName() <= fam.Name; j++ {
			if mfs[j].GetName() == fam.Name {
				errs = append(errs, fmt.Errorf("%w: %s", ErrDuplicateFamily, fam.Name))
				continue
			}
			if err := enc.Encode(mfs[j]); err != nil {
				return err
			}
		}
		s.writeFamily(bw, fam, om)
		if bw.err != nil {
			return bw.err
		}
	}
	for ; j < len(mfs); j++ {
		if err := enc.Encode(mfs[j]); err != nil {
			return err
		}
	}
	if err := enc.(expfmt.Closer).Close(); err != nil { // OpenMetrics' # EOF
		return err
	}
	if err := bw.flush(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// writeFamily writes a family's header and every run's series of it.
func (s *snapshot) writeFamily(bw *bufWriter, fam *Family, om bool) {
	slot := -1
	switch fam {
	case RunCreated:
		if !s.created {
			return
		}
		slot = slotCreated
	case RunElapsed:
		slot = slotElapsed
	case RunFinished:
		if !s.finished {
			return
		}
		slot = slotFinished
	case RunSteps:
		slot = slotSteps
	case RunTokens:
		slot = slotTokens
	}
	if len(s.runs) == 0 {
		return
	}
	bw.writeString(header(fam, om))
	for _, a := range s.apps {
		for i := a.lo; i < a.hi; i++ {
			r := &s.runs[i]
			if slot >= 0 {
				if v := r.value(slot); v != "" {
					bw.line(fam.Name, a.prefix, r.labels(), "} ", v)
				}
				continue
			}
			for k, st := range statusSuffixes {
				v := "0"
				if int(r.status) == k {
					v = "1"
				}
				bw.line(fam.Name, a.prefix, r.labels(), st, v)
			}
		}
	}
}

// statusSuffixes end the label set of each status series.
var statusSuffixes = func() []string {
	s := make([]string, len(Statuses))
	for i, st := range Statuses {
		s[i] = `,status="` + escapeLabel(st) + `"} `
	}
	return s
}()

var headers = func() map[*Family][2]string {
	h := make(map[*Family][2]string, len(RunFamilies))
	for _, f := range RunFamilies {
		text := strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(f.Help)
		om := strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(f.Help)
		h[f] = [2]string{
			"# HELP " + f.Name + " " + text + "\n# TYPE " + f.Name + " gauge\n",
			"# HELP " + f.Name + " " + om + "\n# TYPE " + f.Name + " gauge\n",
		}
	}
	return h
}()

func header(f *Family, om bool) string {
	if om {
		return headers[f][1]
	}
	return headers[f][0]
}

// bufWriter batches the many short pieces of the per-run lines.
type bufWriter struct {
	w   io.Writer
	b   *[]byte
	err error
}

const bufSize = 64 << 10

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, bufSize); return &b }}

func (bw *bufWriter) line(name, prefix, labels, end, value string) {
	b := *bw.b
	b = append(b, name...)
	b = append(b, '{')
	b = append(b, prefix...)
	b = append(b, labels...)
	b = append(b, end...)
	b = append(b, value...)
	b = append(b, '\n')
	*bw.b = b
	if len(b) >= bufSize-512 {
		bw.flush()
	}
}

func (bw *bufWriter) writeString(s string) {
	*bw.b = append(*bw.b, s...)
}

// Write lets the encoder of the gathered families write through the same
// buffer, in order.
func (bw *bufWriter) Write(p []byte) (int, error) {
	if bw.err != nil {
		return 0, bw.err
	}
	if len(*bw.b)+len(p) > bufSize {
		if err := bw.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) > bufSize {
		return bw.w.Write(p)
	}
	*bw.b = append(*bw.b, p...)
	return len(p), nil
}

func (bw *bufWriter) flush() error {
	if bw.err == nil && len(*bw.b) > 0 {
		_, bw.err = bw.w.Write(*bw.b)
	}
	*bw.b = (*bw.b)[:0]
	return bw.err
}

func (bw *bufWriter) release() {
	*bw.b = (*bw.b)[:0]
	bufs.Put(bw.b)
}
