package harness

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestHistogramAccuracy(t *testing.T) {
	for _, v := range []uint64{0, 1, 31, 32, 33, 100, 1000, 12345, 1e6, 3e9, 1 << 50} {
		got := histValue(histIndex(v))
		diff := float64(got) - float64(v)
		if diff < 0 {
			diff = -diff
		}
		if v >= 32 && diff/float64(v) > 0.035 || v < 32 && got != v {
			t.Errorf("value %d reads back as %d", v, got)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	q, n := h.quantiles(0.5, 0.99, 0.999)
	if n != 1000 {
		t.Fatalf("count %d, want 1000", n)
	}
	want := []time.Duration{500 * time.Microsecond, 990 * time.Microsecond, 999 * time.Microsecond}
	for i := range q {
		if d := float64(q[i]-want[i]) / float64(want[i]); d > 0.035 || d < -0.035 {
			t.Errorf("quantile %d = %v, want about %v", i, q[i], want[i])
		}
	}
}

func TestChartsAreWellFormedXML(t *testing.T) {
	var b strings.Builder
	WriteLineChart(&b, "t <&>", "x", "y", []Series{{Name: "a", X: []float64{1, 16, 256}, Y: []float64{10, 1e3, 1e5}}, {Name: "b", X: []float64{1, 16}, Y: []float64{5, 50}}}, func(v float64) string { return "v" })
	WriteBarChart(&b, "bars", "µs", []string{"p50", "p99"}, []Bars{{Name: "a", Values: []float64{1, 100}}}, func(v float64) string { return "v" })
	for _, doc := range strings.SplitAfter(b.String(), "</svg>\n") {
		if doc == "" {
			continue
		}
		d := xml.NewDecoder(strings.NewReader(doc))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chart is not well-formed XML: %v", err)
			}
		}
	}
}
