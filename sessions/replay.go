package sessions

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

func replayHeader(w io.Writer, ev *Event) error {
	profile := ""
	if ev.Profile != "" {
		profile = " profile " + ev.Profile
	}
	user := ev.User
	if ev.Actor != "" {
		user += " via " + ev.Actor
	}
	_, err := fmt.Fprintf(w, "-- session %s: user %s groups [%s] from %s application %q database %s%s as %s\n",
		ev.Session, user, strings.Join(ev.Groups, ","), orDash(ev.ClientAddr), ev.ApplicationName, orDash(ev.Database), profile, orDash(ev.BackendUser))
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clock(ev *Event) string {
	t := ev.TimeValue()
	if t.IsZero() {
		return ev.Time
	}
	return t.Format("2006-01-02 15:04:05.000Z")
}

func replayEvent(w io.Writer, ev *Event) error {
	var b strings.Builder
	switch ev.Type {
	case TypeSessionStart:
		fmt.Fprintf(&b, "-- %s connected\n", clock(ev))
	case TypeStatement:
		sql := strings.TrimRight(ev.SQL, " \t\r\n;")
		fmt.Fprintf(&b, "\n-- %s\n%s@%s=> %s;\n", clock(ev), ev.User, orDash(ev.Database), sql)
		if len(ev.Params) > 0 {
			ps := make([]string, len(ev.Params))
			for i, p := range ev.Params {
				if p == nil {
					ps[i] = fmt.Sprintf("$%d=NULL", i+1)
				} else {
					ps[i] = fmt.Sprintf("$%d='%s'", i+1, *p)
				}
			}
			fmt.Fprintf(&b, "-- params: %s\n", strings.Join(ps, " "))
		}
		fmt.Fprintf(&b, "-- action: %s  decision: %s  time: %s", strings.Join(ev.Actions, ","), ev.Decision, durMS(ev.DurationUS))
		if ev.ApprovalID != "" {
			fmt.Fprintf(&b, "  approval: %s", ev.ApprovalID)
		}
		b.WriteByte('\n')
		if ev.Error != "" {
			fmt.Fprintf(&b, "ERROR:  %s\n", ev.Error)
		} else if len(ev.Columns) > 0 {
			writeTable(&b, ev.Columns, ev.Rows)
			rows := "rows"
			if ev.RowsTotal == 1 {
				rows = "row"
			}
			if int64(len(ev.Rows)) < ev.RowsTotal {
				fmt.Fprintf(&b, "(%d %s; %d recorded)\n", ev.RowsTotal, rows, len(ev.Rows))
			} else {
				fmt.Fprintf(&b, "(%d %s)\n", ev.RowsTotal, rows)
			}
		} else if ev.Decision == DecisionAllow || ev.Decision == DecisionApproved {
			fmt.Fprintf(&b, "-- %d rows affected\n", ev.RowsTotal)
		}
	case TypeApproval:
		fmt.Fprintf(&b, "-- %s approval %s %s", clock(ev), ev.ApprovalID, ev.ApprovalState)
		if ev.DecidedBy != "" {
			fmt.Fprintf(&b, " by %s", ev.DecidedBy)
			if ev.DecidedByActor != "" {
				fmt.Fprintf(&b, " via %s", ev.DecidedByActor)
			}
		}
		if ev.Reason != "" {
			fmt.Fprintf(&b, " (%s)", ev.Reason)
		}
		b.WriteByte('\n')
	case TypeError:
		fmt.Fprintf(&b, "-- %s ERROR: %s\n", clock(ev), ev.Error)
	case TypeSessionEnd:
		fmt.Fprintf(&b, "\n-- %s session ended: %s\n", clock(ev), ev.Reason)
	default:
		return nil
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func durMS(us int64) string {
	return fmt.Sprintf("%.3f ms", float64(us)/1000)
}

// writeTable prints rows like psql's aligned format (NULL prints empty,
// as psql does by default; the JSON record keeps null distinct from "").
func writeTable(b *strings.Builder, cols []string, rows [][]*string) {
	width := make([]int, len(cols))
	for i, c := range cols {
		width[i] = utf8.RuneCountInString(c)
	}
	cell := func(r []*string, i int) string {
		if i >= len(r) || r[i] == nil {
			return ""
		}
		return strings.ReplaceAll(*r[i], "\n", `\n`)
	}
	for _, r := range rows {
		for i := range cols {
			if n := utf8.RuneCountInString(cell(r, i)); n > width[i] {
				width[i] = n
			}
		}
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-utf8.RuneCountInString(s)) }
	for i, c := range cols {
		if i > 0 {
			b.WriteString("|")
		}
		total := width[i] - utf8.RuneCountInString(c)
		left := total / 2
		b.WriteString(" " + strings.Repeat(" ", left) + c + strings.Repeat(" ", total-left) + " ")
	}
	b.WriteString("\n")
	for i := range cols {
		if i > 0 {
			b.WriteString("+")
		}
		b.WriteString(strings.Repeat("-", width[i]+2))
	}
	b.WriteString("\n")
	for _, r := range rows {
		for i := range cols {
			if i > 0 {
				b.WriteString("|")
			}
			b.WriteString(" " + pad(cell(r, i), width[i]) + " ")
		}
		b.WriteString("\n")
	}
}
