package devstack

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// NumTickets is the size of the seeded support tickets table.
const NumTickets = 300

// TicketCategory is one kind of support request the demo tickets are about.
type TicketCategory struct {
	Slug     string // metadata "category" of each ticket of the kind
	Subjects []string
	Words    []string
}

// TicketCategories are the kinds of request the demo tickets are written about.
var TicketCategories = []TicketCategory{
	{"login", []string{"Cannot log in", "Password reset link expired", "Locked out after MFA change"},
		strings.Fields("login password reset locked account mfa sso session expired credentials sign authenticator lockout username")},
	{"billing", []string{"Charged twice this month", "Invoice shows the wrong plan", "Refund request"},
		strings.Fields("invoice charge refund billing plan subscription card payment receipt overcharged renewal discount prorated")},
	{"search", []string{"Search results look wrong", "Similarity search is slow", "Index build never finishes"},
		strings.Fields("search vector embedding index hnsw similarity nearest results slow latency recall relevance query ranking")},
	{"export", []string{"CSV export is empty", "Export times out", "Need a full data export"},
		strings.Fields("export csv download file columns timeout archive spreadsheet report rows truncated format")},
	{"api", []string{"API returns 500", "Rate limit too low", "Webhook not delivered"},
		strings.Fields("api endpoint request response error status webhook token rate limit retry payload integration sdk")},
	{"shipping", []string{"Order not delivered", "Package arrived damaged", "Change delivery address"},
		strings.Fields("order package delivery shipping courier tracking damaged parcel address warehouse return carrier")},
}

var (
	ticketFiller = strings.Fields("please help thanks urgent since yesterday again still customer issue today we our team noticed")
	priorities   = []string{"low", "normal", "normal", "high", "urgent"}
	channels     = []string{"email", "chat", "phone", "web"}
)

// Ticket is one seeded tickets row (id is its 1-based position).
type Ticket struct {
	CustomerEmail, CustomerPhone string
	Subject, Body                string
	Category                     string
	Metadata                     map[string]any
}

// Tickets returns the deterministic synthetic support tickets.
func Tickets() []Ticket {
	r := rand.New(rand.NewPCG(11, 2025))
	ts := make([]Ticket, NumTickets)
	for i := range ts {
		cat := TicketCategories[i%len(TicketCategories)]
		n := 18 + r.IntN(14)
		words := make([]string, n)
		for j := range words {
			if r.IntN(10) < 7 {
				words[j] = cat.Words[r.IntN(len(cat.Words))]
			} else {
				words[j] = ticketFiller[r.IntN(len(ticketFiller))]
			}
		}
		p := newPerson(r)
		body := "Hello, " + strings.Join(words, " ") + "."
		if r.IntN(4) == 0 { // contact details in the free text, for the detectors
			body += " Reach me at " + p.phone + " or " + p.email + "."
		}
		body += " Regards, " + p.name
		ts[i] = Ticket{
			CustomerEmail: p.email,
			CustomerPhone: p.phone,
			Subject:       fmt.Sprintf("%s (%s)", cat.Subjects[r.IntN(len(cat.Subjects))], cat.Words[r.IntN(len(cat.Words))]),
			Body:          body,
			Category:      cat.Slug,
			Metadata: map[string]any{
				"customer": p.name,
				"email":    p.email,
				"priority": priorities[r.IntN(len(priorities))],
				"category": cat.Slug,
				"channel":  channels[r.IntN(len(channels))],
			},
		}
	}
	return ts
}
