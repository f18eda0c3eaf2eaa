package mcp

import (
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgwarden/pgwarden/internal/pgerr"
)

// ApplicationPrefix starts the application_name of every session the MCP
// server opens through the gateway ("mcp:" + the MCP client's name). The
// gateway tells such sessions which result columns it masks (MaskNotice),
// so the tools can mark them without a second copy of the masking rules.
const ApplicationPrefix = "mcp:"

// maskDetailPrefix starts the DETAIL of a masking notice; the positions
// after it are what the MCP server reads (the message is for people).
const maskDetailPrefix = "pgwarden-masked-columns:"

// MaskNotice is the NoticeResponse the gateway sends an MCP session just
// before a RowDescription whose columns it masks: masked are the 0-based
// positions a rule or a masked source covers, scanned those only the PII
// detectors look into. nil when both are empty.
//
//	NOTICE:  pgwarden: masked columns in this result: email, ssn; scanned by PII detectors: notes
//	DETAIL:  pgwarden-masked-columns: masked=1,2 scanned=3
func MaskNotice(names []string, masked, scanned []int) *pgproto3.NoticeResponse {
	if len(masked) == 0 && len(scanned) == 0 {
		return nil
	}
	var msg strings.Builder
	list := func(label string, idx []int) {
		msg.WriteString(label)
		for j, i := range idx {
			if j > 0 {
				msg.WriteString(", ")
			}
			if i < len(names) {
				msg.WriteString(names[i])
			}
		}
	}
	if len(masked) > 0 {
		list("masked columns in this result: ", masked)
	}
	if len(scanned) > 0 {
		if len(masked) > 0 {
			msg.WriteString("; ")
		}
		list("scanned by PII detectors: ", scanned)
	}
	n := pgerr.Notice("%s", msg.String())
	n.Detail = maskDetailPrefix + " masked=" + joinInts(masked) + " scanned=" + joinInts(scanned)
	return n
}

func joinInts(v []int) string {
	b := make([]byte, 0, 4*len(v))
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(x), 10)
	}
	return string(b)
}

// maskInfo is what a masking notice says about one result.
type maskInfo struct {
	masked, scanned map[int]bool
}

// parseMaskNotice reads a notice MaskNotice built; ok is false for any
// other notice (or a malformed one).
func parseMaskNotice(n *pgconn.Notice) (mi maskInfo, ok bool) {
	rest, found := strings.CutPrefix(n.Detail, maskDetailPrefix)
	if !found || n.Code != "00000" {
		return maskInfo{}, false
	}
	mi = maskInfo{masked: map[int]bool{}, scanned: map[int]bool{}}
	for _, field := range strings.Fields(rest) {
		key, vals, _ := strings.Cut(field, "=")
		var dst map[int]bool
		switch key {
		case "masked":
			dst = mi.masked
		case "scanned":
			dst = mi.scanned
		default:
			return maskInfo{}, false
		}
		if vals == "" {
			continue
		}
		for _, v := range strings.Split(vals, ",") {
			i, err := strconv.Atoi(v)
			if err != nil || i < 0 || i > 1<<16 {
				return maskInfo{}, false
			}
			dst[i] = true
		}
	}
	return mi, true
}
