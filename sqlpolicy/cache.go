package sqlpolicy

import (
	"hash/maphash"
	"sync"

	"github.com/pgwarden/pgwarden/internal/analysis"
)

// MaxCachedSQL is the longest query text a Classifier caches (64 KiB: a
// 2000-dimension vector literal fits). Longer texts are classified every
// time. The cache holds at most size entries, so its memory is bounded by
// size × MaxCachedSQL plus the analyses.
const MaxCachedSQL = 64 << 10

const cacheShards = 16

// Classifier classifies query strings with a bounded LRU cache keyed by
// the exact query text. It is safe for concurrent use; one Classifier
// serves every session of a gateway.
//
// Why the exact text and not pg_query's fingerprint or normalized text:
// the fingerprint is a 64-bit non-cryptographic hash (XXH3), so a crafted
// statement could collide with a cached one and borrow its decision; and
// literals do change decisions (set_config('role', ...) vs
// set_config('search_path', ...), query_to_xml('DELETE ...')). Keying by
// normalized text would be safe for literal-independent statements, but
// pg_query.Normalize costs about 60% of a full classification (measured:
// 155 µs vs 211-270 µs for a 1536-dimension kNN query), so a second level
// would save little on a hit and add that cost to every miss. Prepared
// statements (extended protocol Parse) and repeated texts — the common case
// for drivers — hit the exact-text level; kNN queries that inline a fresh
// vector literal each time are classified cold (about 0.2 ms).
type Classifier struct {
	seed   maphash.Seed
	shards [cacheShards]shard
}

type shard struct {
	mu    sync.Mutex
	m     map[string]*entry
	head  entry // sentinel of a circular doubly-linked list; head.next is the most recent
	limit int
}

type entry struct {
	key        string
	fs         *analysis.Functions // the classification it was made with
	a          *Analysis
	err        error
	prev, next *entry
}

// NewClassifier returns a Classifier caching up to size query texts
// (size <= 0: no caching).
func NewClassifier(size int) *Classifier {
	c := &Classifier{seed: maphash.MakeSeed()}
	per := 0
	if size > 0 {
		per = (size + cacheShards - 1) / cacheShards
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*entry)
		s.head.next, s.head.prev = &s.head, &s.head
		s.limit = per
	}
	return c
}

// Classify is the cached form of the package-level Classify. The returned
// Analysis is shared with other callers: do not modify it.
func (c *Classifier) Classify(sql string) (*Analysis, error) { return c.ClassifyWith(sql, nil) }

// ClassifyWith is the cached form of ClassifyWith. An entry made with
// another function classification (another database, or a snapshot since
// refreshed) is classified again: a function's class is part of the
// decision.
func (c *Classifier) ClassifyWith(sql string, fs *analysis.Functions) (*Analysis, error) {
	fs = orBuiltin(fs)
	if len(sql) > MaxCachedSQL || c.shards[0].limit == 0 {
		return ClassifyWith(sql, fs)
	}
	s := &c.shards[maphash.String(c.seed, sql)%cacheShards]
	s.mu.Lock()
	if e, ok := s.m[sql]; ok && e.fs == fs {
		s.moveFront(e)
		a, err := e.a, e.err
		s.mu.Unlock()
		return a, err
	}
	s.mu.Unlock()

	a, err := ClassifyWith(sql, fs)

	s.mu.Lock()
	if e, ok := s.m[sql]; ok && e.fs == fs { // another goroutine got there first
		s.moveFront(e)
		a, err = e.a, e.err
	} else if ok {
		e.fs, e.a, e.err = fs, a, err
		s.moveFront(e)
	} else {
		e := &entry{key: sql, fs: fs, a: a, err: err}
		s.m[sql] = e
		s.pushFront(e)
		if len(s.m) > s.limit {
			old := s.head.prev
			s.unlink(old)
			delete(s.m, old.key)
		}
	}
	s.mu.Unlock()
	return a, err
}

// Len returns the number of cached query texts.
func (c *Classifier) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (s *shard) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = &s.head, s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (s *shard) moveFront(e *entry) {
	if s.head.next == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}
