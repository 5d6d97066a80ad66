package harness

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// palette gives each series a distinct colour, in system order.
var palette = []string{"#222222", "#888888", "#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// Series is one line of a line chart.
type Series struct {
	Name string
	X, Y []float64
}

const (
	svgW, svgH                     = 760, 440
	padL, padR, padT, padB         = 80, 170, 40, 50
	plotW, plotH                   = svgW - padL - padR, svgH - padT - padB
	svgFont                        = `font-family="sans-serif" font-size="12"`
	svgHeader                      = `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">` + "\n"
	svgBackground                  = `<rect width="100%" height="100%" fill="white"/>` + "\n"
	minLogSpan             float64 = 1
)

// logRange returns the decades that cover the positive values of vs.
func logRange(vs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if v > 0 {
			lo = math.Min(lo, v)
			hi = math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 1
	}
	lo, hi = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if hi-lo < minLogSpan {
		hi = lo + minLogSpan
	}
	return lo, hi
}

func esc(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

// WriteLineChart draws series on log-log axes: x ticks at the x values of
// the first series, y gridlines at each decade.
func WriteLineChart(w io.Writer, title, xLabel, yLabel string, series []Series, yFmt func(float64) string) {
	var xs, ys []float64
	for _, s := range series {
		xs = append(xs, s.X...)
		ys = append(ys, s.Y...)
	}
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		if x > 0 {
			xlo, xhi = math.Min(xlo, math.Log10(x)), math.Max(xhi, math.Log10(x))
		}
	}
	if !(xhi > xlo) {
		xlo, xhi = xlo-0.5, xlo+0.5
	}
	ylo, yhi := logRange(ys)
	px := func(x float64) float64 { return padL + (math.Log10(x)-xlo)/(xhi-xlo)*plotW }
	py := func(y float64) float64 { return padT + plotH - (math.Log10(y)-ylo)/(yhi-ylo)*plotH }

	writeFrame(w, title, ylo, yhi, py, yFmt)
	seen := map[float64]bool{}
	for _, x := range xs {
		if x <= 0 || seen[x] {
			continue
		}
		seen[x] = true
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", px(x), padT, px(x), padT+plotH)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" %s text-anchor="middle">%g</text>`+"\n", px(x), padT+plotH+16, svgFont, x)
	}
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", padL, padT, plotW, plotH)
	fmt.Fprintf(w, `<text x="%d" y="%d" %s text-anchor="middle">%s</text>`+"\n", padL+plotW/2, svgH-12, svgFont, esc(xLabel))
	fmt.Fprintf(w, `<text x="16" y="%d" %s text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>`+"\n", padT+plotH/2, svgFont, padT+plotH/2, esc(yLabel))
	for i, s := range series {
		col := palette[i%len(palette)]
		var pts []string
		for j := range s.X {
			if s.X[j] > 0 && s.Y[j] > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.X[j]), py(s.Y[j])))
			}
		}
		dash := ""
		if i%2 == 1 {
			dash = ` stroke-dasharray="6 3"`
		}
		if len(pts) > 1 {
			fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), col, dash)
		}
		for _, p := range pts {
			x, y, _ := strings.Cut(p, ",")
			fmt.Fprintf(w, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", x, y, col)
		}
		ly := padT + 10 + i*18
		fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", padL+plotW+12, ly, padL+plotW+36, ly, col, dash)
		fmt.Fprintf(w, `<text x="%d" y="%d" %s>%s</text>`+"\n", padL+plotW+42, ly+4, svgFont, esc(s.Name))
	}
	fmt.Fprintln(w, "</svg>")
}

// Bars is one group of a grouped bar chart.
type Bars struct {
	Name   string
	Values []float64 // one per label of the chart
}

// WriteBarChart draws groups of bars on a log y axis.
func WriteBarChart(w io.Writer, title, yLabel string, labels []string, groups []Bars, yFmt func(float64) string) {
	var ys []float64
	for _, g := range groups {
		ys = append(ys, g.Values...)
	}
	ylo, yhi := logRange(ys)
	py := func(y float64) float64 { return padT + plotH - (math.Log10(y)-ylo)/(yhi-ylo)*plotH }
	writeFrame(w, title, ylo, yhi, py, yFmt)
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", padL, padT, plotW, plotH)
	fmt.Fprintf(w, `<text x="16" y="%d" %s text-anchor="middle" transform="rotate(-90 16 %d)">%s</text>`+"\n", padT+plotH/2, svgFont, padT+plotH/2, esc(yLabel))
	if len(groups) == 0 {
		fmt.Fprintln(w, "</svg>")
		return
	}
	gw := float64(plotW) / float64(len(groups))
	bw := gw * 0.8 / float64(len(labels))
	base := float64(padT + plotH)
	for i, g := range groups {
		x0 := padL + float64(i)*gw + gw*0.1
		for j, v := range g.Values {
			if v <= 0 {
				continue
			}
			y := py(v)
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				x0+float64(j)*bw, y, bw-1, base-y, palette[(j+2)%len(palette)], esc(g.Name), esc(labels[j]), esc(yFmt(v)))
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%d" %s text-anchor="end" transform="rotate(-35 %.1f %d)">%s</text>`+"\n",
			x0+gw*0.4, padT+plotH+14, svgFont, x0+gw*0.4, padT+plotH+14, esc(g.Name))
	}
	for j, l := range labels {
		ly := padT + 10 + j*18
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="20" height="10" fill="%s"/>`+"\n", padL+plotW+12, ly-5, palette[(j+2)%len(palette)])
		fmt.Fprintf(w, `<text x="%d" y="%d" %s>%s</text>`+"\n", padL+plotW+38, ly+4, svgFont, esc(l))
	}
	fmt.Fprintln(w, "</svg>")
}

// writeFrame writes what both charts start with: the SVG header, the
// background, the title and the y axis's grid lines with their labels, one
// per decade from ylo to yhi (log10 values); py maps a value to its y and
// yFmt labels it.
func writeFrame(w io.Writer, title string, ylo, yhi float64, py func(float64) float64, yFmt func(float64) string) {
	fmt.Fprintf(w, svgHeader, svgW, svgH, svgW, svgH)
	fmt.Fprint(w, svgBackground)
	fmt.Fprintf(w, `<text x="%d" y="22" font-family="sans-serif" font-size="15" font-weight="bold">%s</text>`+"\n", padL, esc(title))
	for d := ylo; d <= yhi; d++ {
		y := py(math.Pow(10, d))
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", padL, y, padL+plotW, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" %s text-anchor="end">%s</text>`+"\n", padL-6, y+4, svgFont, esc(yFmt(math.Pow(10, d))))
	}
}
