package drill

import (
	"fmt"
	"html"
	"io"
	"strings"
	"time"
)

// WriteTimeline writes r as a self-contained SVG picture: payments
// acknowledged (green, up; black on top for those acknowledged and then
// lost) and not (red, down) per time bucket by the time they were sent,
// with the replication cut, fault, detection, promotion, recovery and
// routing changes as labelled vertical lines.
func (r *Report) WriteTimeline(w io.Writer) error {
	const (
		width, height    = 1000, 360
		left, right, top = 60, 20, 40
		plotH            = 200
		bucket           = 250 * time.Millisecond
	)
	start, end := r.Start, r.End
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	span := end.Sub(start)
	n := int(span/bucket) + 1
	ok, bad, gone := make([]int, n), make([]int, n), make([]int, n)
	peak := 1
	for _, a := range r.Attempts {
		i := int(a.Sent.Sub(start) / bucket)
		if i < 0 || i >= n {
			continue
		}
		if a.Answer == Acked {
			ok[i]++
		} else {
			bad[i]++
		}
		peak = max(peak, ok[i], bad[i])
	}
	for _, a := range r.lostAttempts() {
		if i := int(a.Sent.Sub(start) / bucket); i >= 0 && i < n {
			gone[i]++
		}
	}
	plotW := float64(width - left - right)
	x := func(t time.Time) float64 { return left + plotW*float64(t.Sub(start))/float64(span) }
	mid := float64(top + plotH/2)
	scale := float64(plotH/2-4) / float64(peak)
	bw := plotW / float64(n)

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", left,
		html.EscapeString(fmt.Sprintf("paydr drill %s: %s, %s -> %s (rto %s, %d lost, %d duplicated)", r.Prefix, r.Fault, r.From, r.To,
			r.RTO.Round(time.Millisecond), r.LostCount, r.Classification.Counts[ClassDuplicated])))
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888"/>`+"\n", left, mid, width-right, mid)
	fmt.Fprintf(&b, `<text x="4" y="%.1f" fill="#2a7">ok</text><text x="4" y="%.1f" fill="#c33">errors</text>`+"\n", mid-10, mid+18)
	if len(r.Classification.Lost) > 0 {
		fmt.Fprintf(&b, `<text x="4" y="%.1f" fill="#111">lost</text>`+"\n", mid-24)
	}
	for i := 0; i < n; i++ {
		bx := float64(left) + bw*float64(i)
		if ok[i] > 0 {
			h := float64(ok[i]) * scale
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2a7"><title>%d ok</title></rect>`+"\n", bx, mid-h, max(bw-0.5, 0.5), h, ok[i])
		}
		if gone[i] > 0 {
			h := float64(ok[i]) * scale
			g := float64(gone[i]) * scale
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#111"><title>%d acknowledged, then lost</title></rect>`+"\n", bx, mid-h, max(bw-0.5, 0.5), g, gone[i])
		}
		if bad[i] > 0 {
			h := float64(bad[i]) * scale
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#c33"><title>%d errors</title></rect>`+"\n", bx, mid, max(bw-0.5, 0.5), h, bad[i])
		}
	}
	// time axis, one tick a second (or every 5 s for long drills)
	step := time.Second
	if span > 60*time.Second {
		step = 5 * time.Second
	}
	axisY := float64(top + plotH + 14)
	for t := time.Duration(0); t <= span; t += step {
		tx := x(start.Add(t))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc"/>`, tx, top+plotH, tx, top+plotH+4)
		if t%(5*step) == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%ds</text>`, tx, axisY, int(t/time.Second))
		}
	}
	b.WriteString("\n")
	colors := map[string]string{"fault": "#c33", "detected": "#e80", "unhealthy": "#e80", "healthy": "#2a7", "route": "#36c", "promoted": "#909", "recovered": "#2a7", "lifted": "#888", "cut": "#111", "fenced": "#a60"}
	labelY := top + plotH + 32
	for i, e := range r.Events {
		if e.Time.Before(start) || e.Time.After(end.Add(5*time.Second)) {
			continue
		}
		ex := x(e.Time)
		col := colors[e.Kind]
		if col == "" {
			col = "#555"
		}
		label := e.Kind
		if e.Region != "" {
			label += " " + e.Region
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 2"><title>%s</title></line>`+"\n",
			ex, top, ex, top+plotH, col, html.EscapeString(e.Time.UTC().Format("15:04:05.000")+" "+label+" "+e.Detail))
		// Labels near the right edge end at their line instead of
		// running off the picture.
		tx, anchor := ex+2, "start"
		if ex > width-right-160 {
			tx, anchor = ex-2, "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s" text-anchor="%s">%s +%s</text>`+"\n", tx, labelY+12*(i%6), col, anchor,
			html.EscapeString(label), e.Time.Sub(start).Round(time.Millisecond))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
