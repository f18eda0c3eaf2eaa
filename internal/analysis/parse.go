package analysis

import (
	"hash/maphash"
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// MaxCachedParse is the longest text whose parse tree is kept for reuse.
const MaxCachedParse = 64 << 10

const (
	parseShards   = 8
	parsePerShard = 64
)

type parsed struct {
	tree *pg.ParseResult
	err  error
}

type parseShard struct {
	mu    sync.Mutex
	m     map[string]parsed
	order []string // FIFO eviction
}

var (
	parseSeed  = maphash.MakeSeed()
	parseCache [parseShards]parseShard
)

// Parse is the one pg_query parse of sql. Classification, masking's trace
// and approval normalisation of the same text moments apart share one
// tree (a small cache by exact text, so a statement is parsed once per
// arrival, not once per consumer). The tree is shared: never modify it.
func Parse(sql string) (*pg.ParseResult, error) {
	if len(sql) > MaxCachedParse {
		return pg.Parse(sql)
	}
	s := &parseCache[maphash.String(parseSeed, sql)%parseShards]
	s.mu.Lock()
	if p, ok := s.m[sql]; ok {
		s.mu.Unlock()
		return p.tree, p.err
	}
	s.mu.Unlock()
	tree, err := pg.Parse(sql)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]parsed, parsePerShard)
	}
	if _, ok := s.m[sql]; !ok {
		if len(s.order) >= parsePerShard {
			delete(s.m, s.order[0])
			s.order = append(s.order[:0], s.order[1:]...)
		}
		s.m[sql] = parsed{tree, err}
		s.order = append(s.order, sql)
	}
	s.mu.Unlock()
	return tree, err
}
