package ota

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Maintenance windows (config `ota.window`): outside every window no new transfer starts. A window is
// written "HH:MM-HH:MM", optionally after days of the week: "01:00-05:00", "mon-fri 22:30-06:00",
// "sat,sun 10:00-16:00". A window whose end is not after its start runs past midnight into the next day
// (the days name the day it opens). "00:00-24:00" is the whole day.

// WindowSpec is one maintenance window as written in the configuration.
type WindowSpec struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes after midnight; end may be 1440
}

var weekdayNames = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseWindow parses one window ("01:00-05:00", "mon-fri 22:30-06:00", "sat,sun 10:00-16:00").
func ParseWindow(s string) (WindowSpec, error) {
	var w WindowSpec
	fields := strings.Fields(strings.ToLower(s))
	var span string
	switch len(fields) {
	case 1:
		span = fields[0]
		for i := range w.days {
			w.days[i] = true
		}
	case 2:
		span = fields[1]
		for part := range strings.SplitSeq(fields[0], ",") {
			from, to, isRange := strings.Cut(part, "-")
			a, ok := weekdayNames[from]
			if !ok {
				return w, fmt.Errorf("window %q: %q is not a day (mon, tue, wed, thu, fri, sat, sun)", s, from)
			}
			b := a
			if isRange {
				if b, ok = weekdayNames[to]; !ok {
					return w, fmt.Errorf("window %q: %q is not a day (mon, tue, wed, thu, fri, sat, sun)", s, to)
				}
			}
			for d := a; ; d = (d + 1) % 7 {
				w.days[d] = true
				if d == b {
					break
				}
			}
		}
	default:
		return w, fmt.Errorf("window %q: want \"HH:MM-HH:MM\", optionally after days (\"mon-fri 22:00-06:00\")", s)
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return w, fmt.Errorf("window %q: want a time range HH:MM-HH:MM", s)
	}
	var err error
	if w.start, err = parseClock(from, false); err != nil {
		return w, fmt.Errorf("window %q: start: %w", s, err)
	}
	if w.end, err = parseClock(to, true); err != nil {
		return w, fmt.Errorf("window %q: end: %w", s, err)
	}
	if w.start == w.end {
		return w, fmt.Errorf("window %q: start and end are the same time (use 00:00-24:00 for a whole day)", s)
	}
	return w, nil
}

// parseClock reads HH:MM as minutes after midnight; 24:00 only when allow24.
func parseClock(s string, allow24 bool) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && (m != 0 || !allow24)) {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return h*60 + m, nil
}

// Windows is the compiled `ota.window` configuration: the windows and their time zone. The zero value has
// no windows: transfers may start at any time.
type Windows struct {
	specs []WindowSpec
	loc   *time.Location
}

// CompileWindows parses the configured windows in the named IANA time zone ("" or "Local": the machine's).
func CompileWindows(specs []string, zone string) (Windows, error) {
	w := Windows{loc: time.Local}
	if zone != "" && zone != "Local" {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return Windows{}, fmt.Errorf("ota.window_timezone: %q: %w", zone, err)
		}
		w.loc = loc
	}
	for _, s := range specs {
		spec, err := ParseWindow(s)
		if err != nil {
			return Windows{}, fmt.Errorf("ota.window: %w", err)
		}
		w.specs = append(w.specs, spec)
	}
	return w, nil
}

// Any reports whether windows are configured.
func (w Windows) Any() bool { return len(w.specs) > 0 }

// bounds returns the start and end of the window that opens on the day starting at midnight.
func (s WindowSpec) bounds(midnight time.Time) (time.Time, time.Time) {
	end := s.end
	if end <= s.start {
		end += 24 * 60 // runs past midnight
	}
	at := func(min int) time.Time {
		return time.Date(midnight.Year(), midnight.Month(), midnight.Day(), 0, min, 0, 0, midnight.Location())
	}
	return at(s.start), at(end)
}

// Open reports whether t is inside a window (always true without windows), and when that window closes.
func (w Windows) Open(t time.Time) (bool, time.Time) {
	if !w.Any() {
		return true, time.Time{}
	}
	lt := t.In(w.loc)
	today := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, w.loc)
	open, closes := false, time.Time{}
	for _, day := range []time.Time{today.AddDate(0, 0, -1), today} {
		for _, s := range w.specs {
			if !s.days[day.Weekday()] {
				continue
			}
			from, to := s.bounds(day)
			if !lt.Before(from) && lt.Before(to) && to.After(closes) {
				open, closes = true, to
			}
		}
	}
	return open, closes
}

// NextOpen returns when the next window opens after t (t itself when a window is open; zero without
// windows).
func (w Windows) NextOpen(t time.Time) time.Time {
	if !w.Any() {
		return time.Time{}
	}
	if open, _ := w.Open(t); open {
		return t
	}
	lt := t.In(w.loc)
	today := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, w.loc)
	var best time.Time
	for i := 0; i <= 7; i++ {
		day := today.AddDate(0, 0, i)
		for _, s := range w.specs {
			if !s.days[day.Weekday()] {
				continue
			}
			from, _ := s.bounds(day)
			if from.After(lt) && (best.IsZero() || from.Before(best)) {
				best = from
			}
		}
		if !best.IsZero() {
			return best
		}
	}
	return best
}
