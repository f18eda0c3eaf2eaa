package record

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// AppendCanonical appends the canonical JSON form of ev to dst: the bytes
// encoding/json produces for Event (struct field order, omitempty as
// tagged, SetEscapeHTML(false), no whitespace), without the trailing
// newline and without the hash field when withHash is false. It is the
// writer's per-event encoder; TestCanonicalEncoderMatchesJSON checks it
// byte for byte against encoding/json over random events, so stores written
// by either verify with the other.
func AppendCanonical(dst []byte, ev *Event, withHash bool) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, ev.Seq, 10)
	dst = append(dst, `,"time":`...)
	dst = AppendJSONString(dst, ev.Time)
	dst = AppendBody(dst, ev)
	dst = append(dst, `,"prev_hash":`...)
	dst = AppendJSONString(dst, ev.PrevHash)
	if withHash {
		dst = appendOptString(dst, `,"hash":`, ev.Hash)
	}
	return append(dst, '}')
}

// AppendBody appends the fields between time and prev_hash: everything of
// the event but its place in the chain, so the recorder encodes it before
// it takes the store lock (see Encoder.ChainLine).
func AppendBody(dst []byte, ev *Event) []byte {
	dst = appendOptString(dst, `,"session":`, ev.Session)
	dst = append(dst, `,"type":`...)
	dst = AppendJSONString(dst, ev.Type)
	dst = appendOptString(dst, `,"user":`, ev.User)
	dst = appendOptString(dst, `,"actor":`, ev.Actor)
	if len(ev.Groups) > 0 {
		dst = append(dst, `,"groups":`...)
		dst = appendStrings(dst, ev.Groups)
	}
	dst = appendOptString(dst, `,"client_addr":`, ev.ClientAddr)
	dst = appendOptString(dst, `,"application_name":`, ev.ApplicationName)
	dst = appendOptString(dst, `,"database":`, ev.Database)
	dst = appendOptString(dst, `,"profile":`, ev.Profile)
	dst = appendOptString(dst, `,"backend_user":`, ev.BackendUser)
	dst = appendOptString(dst, `,"sql":`, ev.SQL)
	if len(ev.Params) > 0 {
		dst = append(dst, `,"params":`...)
		dst = appendNullableStrings(dst, ev.Params)
	}
	if len(ev.Actions) > 0 {
		dst = append(dst, `,"actions":`...)
		dst = appendStrings(dst, ev.Actions)
	}
	dst = appendOptString(dst, `,"decision":`, ev.Decision)
	if len(ev.Columns) > 0 {
		dst = append(dst, `,"columns":`...)
		dst = appendStrings(dst, ev.Columns)
	}
	if len(ev.Rows) > 0 {
		dst = append(dst, `,"rows":[`...)
		for i, row := range ev.Rows {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendNullableStrings(dst, row)
		}
		dst = append(dst, ']')
	} else if len(ev.rowsJSON) > 0 {
		dst = append(dst, `,"rows":[`...)
		dst = append(dst, ev.rowsJSON...)
		dst = append(dst, ']')
	}
	dst = appendOptInt(dst, `,"rows_total":`, ev.RowsTotal)
	dst = appendOptInt(dst, `,"duration_us":`, ev.DurationUS)
	dst = appendOptString(dst, `,"error":`, ev.Error)
	dst = appendOptString(dst, `,"reason":`, ev.Reason)
	dst = appendOptString(dst, `,"approval_id":`, ev.ApprovalID)
	dst = appendOptString(dst, `,"approval_state":`, ev.ApprovalState)
	dst = appendOptString(dst, `,"decided_by":`, ev.DecidedBy)
	dst = appendOptString(dst, `,"decided_by_actor":`, ev.DecidedByActor)
	dst = appendOptInt(dst, `,"purged_through_seq":`, ev.PurgedThroughSeq)
	dst = appendOptString(dst, `,"purged_through_hash":`, ev.PurgedThroughHash)
	dst = appendOptString(dst, `,"gateway":`, ev.Gateway)
	return dst
}

func appendOptString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, key...)
	return AppendJSONString(dst, s)
}

func appendOptInt(dst []byte, key string, v int64) []byte {
	if v == 0 {
		return dst
	}
	dst = append(dst, key...)
	return strconv.AppendInt(dst, v, 10)
}

// appendStrings encodes a non-nil []string (nil encodes as null, but the
// callers only pass non-empty slices: omitempty).
func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendJSONString(dst, s)
	}
	return append(dst, ']')
}

// appendNullableStrings encodes []*string as encoding/json does: a nil
// slice is null, a nil element is null.
func appendNullableStrings(dst []byte, ss []*string) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		if s == nil {
			dst = append(dst, "null"...)
		} else {
			dst = AppendJSONString(dst, *s)
		}
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// plainJSON8 reports whether none of the 8 bytes of s is a control byte,
// '"', '\\' or non-ASCII (SWAR: a byte's high bit set in the masks below
// means it is one of those).
func plainJSON8(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	x := binary.LittleEndian.Uint64([]byte(s))
	ctl := (x - 0x20*ones) &^ x
	q := x ^ ('"' * ones)
	bs := x ^ ('\\' * ones)
	return (ctl|(q-ones)&^q|(bs-ones)&^bs|x)&highs == 0
}

// AppendJSONString quotes s the way encoding/json does with HTML escaping
// off: '"' and '\\' backslash-escaped; \b \f \n \r \t short forms; other
// bytes below 0x20 as \u00XX; each invalid UTF-8 byte as \ufffd; U+2028
// and U+2029 as \u2028 and \u2029; everything else verbatim.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// 8 bytes at a time while none needs escaping or decoding (a
		// batch INSERT's text is ~75 KB of digits and commas)
		for i+8 <= len(s) && plainJSON8(s[i:i+8]) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
