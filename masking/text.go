package masking

import (
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// MaskText masks PII in free text that leaves through other channels than
// DataRow: ErrorResponse and NoticeResponse messages, details, hints and
// where-context, and NotificationResponse payloads. Every detector (email,
// phone, credit card, SSN) runs here whatever masking.detectors says, and
// the value quoted in PostgreSQL's input-syntax errors (`invalid input
// syntax for type integer: "..."`) and the values in unique-violation
// details (`Key (col)=(...)`) are redacted whole. Names or other free-form
// values a function puts into RAISE NOTICE can still pass (documented).
func (e *Engine) MaskText(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	changed := false
	if out, ok := redactQuoted(b); ok {
		b, changed = out, true
	}
	if out, ok := redactKeyDetail(b); ok {
		b, changed = out, true
	}
	if detAll.run(b, nil) {
		w := make([]byte, len(b))
		copy(w, b)
		detAll.run(b, w)
		b, changed = w, true
	}
	if !changed {
		return s
	}
	return string(b)
}

// redactQuoted replaces the quoted value after "invalid input syntax for
// type T: " / "invalid input value for enum T: " / "value too long" style
// messages: `...: "VALUE"` at the end of the message.
func redactQuoted(b []byte) ([]byte, bool) {
	s := string(b)
	for _, marker := range []string{"invalid input syntax for ", "invalid input value for ", "is out of range for type", "malformed ", "invalid value ", "Token \"", "invalid byte sequence", "could not parse "} {
		i := strings.Index(s, marker)
		if i < 0 {
			continue
		}
		q := strings.IndexByte(s[i:], '"')
		if q < 0 {
			continue
		}
		q += i
		end := strings.LastIndexByte(s, '"')
		if end <= q {
			continue
		}
		return []byte(s[:q+1] + Redacted + s[end:]), true
	}
	// value "X" is out of range ...
	if i := strings.Index(s, `value "`); i >= 0 && strings.Contains(s, "out of range") {
		j := strings.IndexByte(s[i+7:], '"')
		if j >= 0 {
			return []byte(s[:i+7] + Redacted + s[i+7+j:]), true
		}
	}
	return b, false
}

// redactKeyDetail masks `Key (a, b)=(v1, v2)` (unique and foreign-key
// violations) and `Failing row contains (...)` (check/not-null violations).
func redactKeyDetail(b []byte) ([]byte, bool) {
	s := string(b)
	changed := false
	for _, marker := range []string{")=(", "Failing row contains ("} {
		i := strings.Index(s, marker)
		if i < 0 {
			continue
		}
		start := i + len(marker)
		depth, j := 1, start
		for j < len(s) && depth > 0 {
			switch s[j] {
			case '(':
				depth++
			case ')':
				depth--
			}
			j++
		}
		if depth != 0 {
			s = s[:start] + Redacted + ")"
		} else {
			s = s[:start] + Redacted + s[j-1:]
		}
		changed = true
	}
	return []byte(s), changed
}

// MaskDetail masks a DETAIL or CONTEXT (where) field: MaskText, plus every
// double-quoted segment (`Token "..." is invalid.`) and whatever follows
// "data, line N: " (`JSON data, line 1: ...`), where PostgreSQL echoes input.
func (e *Engine) MaskDetail(s string) string {
	s = e.MaskText(s)
	if i := strings.Index(s, "data, line "); i >= 0 {
		if j := strings.Index(s[i:], ": "); j >= 0 {
			end := strings.IndexByte(s[i+j:], '\n')
			if end < 0 {
				s = s[:i+j+2] + Redacted
			} else {
				s = s[:i+j+2] + Redacted + s[i+j+end:]
			}
		}
	}
	return redactAllQuoted(s)
}

// redactAllQuoted replaces the content of every "..." segment.
func redactAllQuoted(s string) string {
	if strings.IndexByte(s, '"') < 0 {
		return s
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i+1:], '"')
		if j < 0 {
			b.WriteString(s[:i+1])
			b.WriteString(Redacted)
			return b.String()
		}
		b.WriteString(s[:i+1])
		if j > 0 {
			b.WriteString(Redacted)
		}
		b.WriteByte('"')
		s = s[i+1+j+1:]
	}
}

// MaskError masks every text field of an ErrorResponse in place.
func (e *Engine) MaskError(m *pgproto3.ErrorResponse) {
	m.Message = e.MaskText(m.Message)
	m.Detail = e.MaskDetail(m.Detail)
	m.Hint = e.MaskText(m.Hint)
	m.Where = e.MaskDetail(m.Where)
	m.InternalQuery = e.MaskText(m.InternalQuery)
}

// MaskNotice masks every text field of a NoticeResponse in place.
func (e *Engine) MaskNotice(m *pgproto3.NoticeResponse) {
	m.Message = e.MaskText(m.Message)
	m.Detail = e.MaskDetail(m.Detail)
	m.Hint = e.MaskText(m.Hint)
	m.Where = e.MaskDetail(m.Where)
	m.InternalQuery = e.MaskText(m.InternalQuery)
}

// MaskNotification masks a NotificationResponse payload in place.
func (e *Engine) MaskNotification(m *pgproto3.NotificationResponse) {
	m.Payload = e.MaskText(m.Payload)
}
