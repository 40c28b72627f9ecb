package exposition

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

func TestHandlerNegotiates(t *testing.T) {
	c := NewCache()
	c.Set(finished("translator", "r1", "succeeded"))
	h := Handler(c, prometheus.NewRegistry(), log.NewNopLogger())
	for _, tc := range []struct {
		accept, acceptEncoding string
		contentType            expfmt.FormatType
		contentEncoding        string
	}{
		{prometheusAccept, "gzip", expfmt.TypeOpenMetrics, "gzip"},
		{"application/openmetrics-text;version=0.0.1", "", expfmt.TypeOpenMetrics, ""},
		{"text/plain;version=0.0.4", "gzip", expfmt.TypeTextPlain, "gzip"},
		{"", "", expfmt.TypeTextPlain, ""},
		{"*/*", "", expfmt.TypeTextPlain, ""},
		// Protobuf is not served: the text format is the fallback.
		{"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited", "", expfmt.TypeTextPlain, ""},
		{"", "zstd", expfmt.TypeTextPlain, "zstd"},
		{"", "zstd, gzip", expfmt.TypeTextPlain, "gzip"},
		{"", "gzip;q=0.5, zstd", expfmt.TypeTextPlain, "zstd"},
		{"", "*", expfmt.TypeTextPlain, "gzip"},
		{"", "gzip;q=0, *;q=0.3", expfmt.TypeTextPlain, "zstd"},
		{"", "identity", expfmt.TypeTextPlain, ""},
		{"", "br, deflate", expfmt.TypeTextPlain, ""},
		{"", "GZIP ; q=1.0", expfmt.TypeTextPlain, "gzip"},
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept", tc.accept)
		req.Header.Set("Accept-Encoding", tc.acceptEncoding)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := expfmt.Format(rec.Header().Get("Content-Type"))
		if got.FormatType() != tc.contentType || rec.Header().Get("Content-Encoding") != tc.contentEncoding {
			t.Errorf("Accept %q, Accept-Encoding %q: Content-Type %q, Content-Encoding %q; want type %v, encoding %q",
				tc.accept, tc.acceptEncoding, got, rec.Header().Get("Content-Encoding"), tc.contentType, tc.contentEncoding)
		}
	}
}

func TestWriteOrderIsStable(t *testing.T) {
	c := NewCache()
	for _, id := range []string{"r3", "r1", "r2"} {
		c.Set(finished("b", id, "failed"))
		c.Set(running("a", id))
	}
	write := func() []byte {
		var b bytes.Buffer
		if err := c.Write(&b, expfmt.NewFormat(expfmt.TypeTextPlain), nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	first := write()
	c.Set(finished("b", "r1", "failed")) // unchanged
	c.Set(running("a", "r3"))            // unchanged
	if second := write(); !bytes.Equal(first, second) {
		t.Errorf("second write differs from the first:\n%s\n---\n%s", first, second)
	}
	c.Set(finished("a", "r1", "failed"))
	if third := write(); bytes.Equal(first, third) {
		t.Error("a changed run did not change the exposition")
	}
}

func TestWriteRefusesDuplicateFamily(t *testing.T) {
	c := NewCache()
	c.Set(finished("translator", "r1", "succeeded"))
	reg := prometheus.NewRegistry()
	dup := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: RunTokens.Name, Help: "old"}, []string{"app"})
	dup.WithLabelValues("translator").Set(7)
	reg.MustRegister(dup)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	err = c.Write(&b, expfmt.NewFormat(expfmt.TypeTextPlain), mfs)
	if !errors.Is(err, ErrDuplicateFamily) {
		t.Errorf("Write error = %v, want ErrDuplicateFamily", err)
	}
	if n := bytes.Count(b.Bytes(), []byte("# TYPE "+RunTokens.Name+" ")); n != 1 {
		t.Errorf("%s declared %d times, want once:\n%s", RunTokens.Name, n, b.Bytes())
	}
	if bytes.Contains(b.Bytes(), []byte("old")) {
		t.Errorf("gathered duplicate written:\n%s", b.Bytes())
	}
}

func TestWriteRefusesProtobuf(t *testing.T) {
	if err := NewCache().Write(&bytes.Buffer{}, expfmt.NewFormat(expfmt.TypeProtoDelim), nil); err == nil {
		t.Error("Write in protobuf: no error")
	}
}

// TestConcurrentSetAndWrite is for the race detector: scrapes while runs
// change.
func TestConcurrentSetAndWrite(t *testing.T) {
	c := NewCache()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			v := running("translator", fmt.Sprint(i%20))
			v.Tokens = int64(i)
			c.Set(v)
			if i%7 == 0 {
				c.Delete("translator", fmt.Sprint(i%20))
			}
		}
		c.DeleteApp("translator")
	}()
	for range 20 {
		if err := c.Write(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain), nil); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if n := c.Len(); n != 0 {
		t.Errorf("Len after DeleteApp = %d, want 0", n)
	}
}
