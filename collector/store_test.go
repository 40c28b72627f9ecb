package collector

import (
	"testing"
	"time"
)

func TestStoreUnlistingKeepsTheCap(t *testing.T) {
	s := newStore(2, shardFilter{})
	now := time.Now()
	for i := range 3 {
		id := runID(i)
		s.add(id, SourceStatic|SourceDiscovered, 0)
		s.markTerminal(id, s.runs[id], now.Add(time.Duration(i)*time.Minute))
	}
	if s.nCapped != 0 {
		t.Fatalf("nCapped = %d with every run listed, want 0", s.nCapped)
	}
	for i := range 3 {
		s.removeSource(runID(i), SourceStatic)
	}
	if s.nCapped != 2 || len(s.runs) != 2 {
		t.Errorf("after unlisting: nCapped = %d, runs = %d; want both at the cap 2", s.nCapped, len(s.runs))
	}
	if _, ok := s.runs[runID(0)]; ok {
		t.Errorf("the oldest finished run should have been evicted")
	}
}

func TestStoreExpiresRequeuedRunsOnTime(t *testing.T) {
	s := newStore(100, shardFilter{})
	t0 := time.Now()
	late, early := runID(1), runID(2)
	s.add(late, SourceDiscovered, 0)
	s.markTerminal(late, s.runs[late], t0.Add(30*time.Minute))
	s.add(early, SourceDiscovered|SourceStatic, 0)
	s.markTerminal(early, s.runs[early], t0)
	s.removeSource(early, SourceStatic) // queued after late, though it finished first
	s.expire(t0.Add(61*time.Minute), time.Hour)
	if _, ok := s.runs[early]; ok {
		t.Errorf("run terminal since T0 still tracked at T0+61m with 1h retention")
	}
	if _, ok := s.runs[late]; !ok {
		t.Errorf("run terminal since T0+30m expired early")
	}
}
