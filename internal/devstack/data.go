package devstack

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Topic is one subject of the demo documents.
type Topic struct {
	Slug  string // the first tag of each document of the topic
	Title string
	Words []string
}

// Topics are the subjects the demo documents are written about.
var Topics = []Topic{
	{"vector_search", "Vector search", strings.Fields("vector embedding similarity nearest neighbor hnsw index cosine distance recall ann dimension quantization ivfflat pgvector query latency approximate graph rerank")},
	{"cooking", "Cooking", strings.Fields("recipe garlic onion simmer sauce bake oven flour butter roast pasta tomato basil skillet dough spice knead broth fry dessert")},
	{"astronomy", "Astronomy", strings.Fields("galaxy telescope nebula orbit planet star comet supernova cosmic asteroid eclipse lunar solar spectrum gravity exoplanet observatory constellation meteor redshift")},
	{"gardening", "Gardening", strings.Fields("garden soil compost seed prune bloom mulch perennial shrub watering harvest seedling greenhouse fertilizer weed root leaf flower trellis bulb")},
	{"finance", "Finance", strings.Fields("invoice budget revenue ledger tax expense payment interest loan equity dividend portfolio cash forecast accounting margin balance credit debt quarterly")},
	{"security", "Security", strings.Fields("password token encryption firewall phishing vulnerability patch breach malware certificate authentication privilege threat incident exploit credential ransomware intrusion mfa siem")},
	{"sports", "Sports", strings.Fields("football goal match league striker coach stadium referee tournament penalty team player score keeper dribble tackle champion fans derby midfield")},
	{"music", "Music", strings.Fields("guitar melody chord rhythm concert piano orchestra tempo album lyrics drum harmony symphony band singer bass violin chorus jazz composer")},
	{"travel", "Travel", strings.Fields("flight passport hotel luggage airport itinerary beach museum train visa tour backpack hostel booking destination ferry sightseeing souvenir map journey")},
	{"medicine", "Medicine", strings.Fields("patient diagnosis symptom vaccine clinic dose therapy surgery nurse fever prescription allergy blood pressure cardiology immune infection antibiotic recovery hospital")},
}

var (
	fillerWords = strings.Fields("notes report update summary weekly review discussion overview new first simple guide details question ideas plan today draft shared team")
	firstNames  = strings.Fields("Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert Sybil Trent Victor Walter Yolanda Zoe Amir Bea Chen Dara Emeka Farah Goran Hana Ines")
	lastNames   = strings.Fields("Smith Johnson Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Thompson White Harris Clark Lewis Walker Young Allen King Wright Scott Green Baker")
	domains     = []string{"example.com", "example.org", "example.net"}
	sources     = []string{"wiki", "email", "slack", "crm", "upload"}
	streets     = strings.Fields("Elm Oak Maple Pine Cedar Birch Willow Lake Hill River")
	cities      = []string{"Springfield, IL 62701", "Riverton, WY 82501", "Fairview, TN 37062", "Greenville, SC 29601", "Madison, WI 53703", "Salem, OR 97301"}
)

// NumDocuments and NumCustomers are the sizes of the seeded tables.
const (
	NumDocuments = 2000
	NumCustomers = 200
)

// Document is one seeded documents row (id is its 1-based position).
type Document struct {
	Title, Body string
	Topic       string
	Metadata    map[string]any
}

// Customer is one seeded customers row.
type Customer struct {
	Name, Email, Phone, SSN, CreditCard, Address, Notes string
}

type person struct{ name, email, phone string }

func newPerson(r *rand.Rand) person {
	f, l := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	return person{
		name:  f + " " + l,
		email: strings.ToLower(f+"."+l) + fmt.Sprintf("%d", r.IntN(100)) + "@" + domains[r.IntN(len(domains))],
		phone: fmt.Sprintf("+1-%03d-555-01%02d", 200+r.IntN(700), r.IntN(100)), // 555-0100..0199: fictional
	}
}

// Documents returns the deterministic demo documents.
func Documents() []Document {
	r := rand.New(rand.NewPCG(42, 2024))
	docs := make([]Document, NumDocuments)
	for i := range docs {
		t := Topics[i%len(Topics)]
		n := 24 + r.IntN(16)
		words := make([]string, n)
		for j := range words {
			if r.IntN(10) < 7 {
				words[j] = t.Words[r.IntN(len(t.Words))]
			} else {
				words[j] = fillerWords[r.IntN(len(fillerWords))]
			}
		}
		p := newPerson(r)
		body := strings.ToUpper(words[0][:1]) + words[0][1:] + " " + strings.Join(words[1:], " ") + "."
		if r.IntN(4) == 0 { // some PII in the text itself, for the detectors
			body += " Contact " + p.name + " at " + p.email + " or " + p.phone + "."
		}
		docs[i] = Document{
			Title: fmt.Sprintf("%s: %s and %s #%d", t.Title, t.Words[r.IntN(len(t.Words))], t.Words[r.IntN(len(t.Words))], i/len(Topics)+1),
			Body:  body,
			Topic: t.Slug,
			Metadata: map[string]any{
				"author": p.name,
				"name":   p.name,
				"email":  p.email,
				"phone":  p.phone,
				"source": sources[r.IntN(len(sources))],
				"tags":   []string{t.Slug, t.Words[r.IntN(len(t.Words))]},
			},
		}
	}
	return docs
}

// Customers returns the deterministic synthetic customers.
func Customers() []Customer {
	r := rand.New(rand.NewPCG(7, 1999))
	cs := make([]Customer, NumCustomers)
	for i := range cs {
		p := newPerson(r)
		area := 100 + r.IntN(565) // 100-664: the format detectors accept, never 000/666/9xx
		cs[i] = Customer{
			Name:       p.name,
			Email:      p.email,
			Phone:      p.phone,
			SSN:        fmt.Sprintf("%03d-%02d-%04d", area, 1+r.IntN(99), 1+r.IntN(9999)),
			CreditCard: luhnCard(r),
			Address:    fmt.Sprintf("%d %s St, %s", 1+r.IntN(9999), streets[r.IntN(len(streets))], cities[r.IntN(len(cities))]),
			Notes:      customerNote(r, p),
		}
	}
	return cs
}

func customerNote(r *rand.Rand, p person) string {
	switch r.IntN(4) {
	case 0:
		return "Prefers email: " + p.email
	case 1:
		return "Call back on " + p.phone + " after 5pm"
	case 2:
		return "Renewal due next quarter"
	default:
		return "Asked about invoice; spoke with " + p.name
	}
}

// luhnCard returns a 16-digit Visa-format test number with a valid check digit.
func luhnCard(r *rand.Rand) string {
	d := make([]int, 16)
	d[0] = 4
	for i := 1; i < 15; i++ {
		d[i] = r.IntN(10)
	}
	sum := 0
	for i := 14; i >= 0; i-- { // positions doubled counting from the check digit
		x := d[i]
		if (15-i)%2 == 1 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	d[15] = (10 - sum%10) % 10
	var b strings.Builder
	for i, x := range d {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteByte(byte('0' + x))
	}
	return b.String()
}
