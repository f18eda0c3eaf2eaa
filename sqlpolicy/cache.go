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

// MaxShapedSQL is the longest query text the shape level serves (1 MiB:
// a multi-row INSERT of 384-dimension vectors is ~70 KiB). Its entries
// keep the shape key (at most MaxCachedSQL) and the constants' bounds, not
// the text.
const MaxShapedSQL = 1 << 20

const cacheShards = 16

// Classifier classifies query strings with two bounded LRU caches. It is
// safe for concurrent use; one Classifier serves every session of a
// gateway.
//
// The first level is keyed by the exact query text: prepared statements
// and repeated texts, the common case for drivers, hit it.
//
// The second level is keyed by the text's shape (analysis.AppendShape):
// the text with every constant's value left out, found by a Go scanner
// that follows PostgreSQL's lexer and is checked against pg_query's by
// FuzzShape. psycopg2, pandas and SQLAlchemy inline every literal, so a
// notebook's kNN search is a new text each time (a 384-float vector
// literal) but the same shape. A classification is stored under its shape
// only when (1) the classifier never looked at a constant's value
// (Statement.constSensitive: set_config's setting, SQL given to
// query_to_xml, EXPLAIN options — TestConstReadsAreMarked keeps every
// A_Const read behind the marker), (2) analysis.Shaped confirms every
// constant the scanner found is an A_Const node of the tree at that place,
// so PostgreSQL's grammar used no constant as anything but a value, and
// (3) no statement is a PREPARE (its body is registered by name). A hit
// returns the stored classification with each statement's SQL moved to the
// new text. FuzzClassifierShape checks that a hit always equals a cold
// classification of the new text.
//
// Why not pg_query's fingerprint or normalized text as the key: the
// fingerprint is a 64-bit non-cryptographic hash (XXH3), so a crafted
// statement could collide with a cached one and borrow its decision, and
// pg_query.Normalize parses the text, costing about 60% of a full
// classification; the shape key is the text itself (no collisions) and
// costs a scan (BenchmarkClassifyShape: a whole hit is 1.3 µs for a
// 384-dimension kNN text, 0.32 µs for pgbench -S).
type Classifier struct {
	seed   maphash.Seed
	shards [cacheShards]shard
	shapes [cacheShards]shard
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
	consts     []analysis.Const // shape entries: the constants of the text a was made from
	prev, next *entry
}

// NewClassifier returns a Classifier caching up to size query texts and
// up to size shapes (size <= 0: no caching).
func NewClassifier(size int) *Classifier {
	c := &Classifier{seed: maphash.MakeSeed()}
	per := 0
	if size > 0 {
		per = (size + cacheShards - 1) / cacheShards
	}
	for _, ss := range []*[cacheShards]shard{&c.shards, &c.shapes} {
		for i := range ss {
			s := &ss[i]
			s.m = make(map[string]*entry)
			s.head.next, s.head.prev = &s.head, &s.head
			s.limit = per
		}
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
	if len(sql) > MaxShapedSQL || c.shards[0].limit == 0 {
		return ClassifyWith(sql, fs)
	}
	exact := len(sql) <= MaxCachedSQL
	if exact {
		s := &c.shards[maphash.String(c.seed, sql)%cacheShards]
		s.mu.Lock()
		if e, ok := s.m[sql]; ok && e.fs == fs {
			s.moveFront(e)
			a, err := e.a, e.err
			s.mu.Unlock()
			return a, err
		}
		s.mu.Unlock()
	}

	buf, shaped := analysis.ShapeOf(sql)
	defer buf.Release()
	shaped = shaped && len(buf.Key) <= MaxCachedSQL
	var ss *shard
	if shaped {
		ss = &c.shapes[maphash.Bytes(c.seed, buf.Key)%cacheShards]
		ss.mu.Lock()
		if e, ok := ss.m[string(buf.Key)]; ok && e.fs == fs && len(e.consts) == len(buf.Consts) {
			ss.moveFront(e)
			a, consts := e.a, e.consts
			ss.mu.Unlock()
			return rebase(a, consts, buf.Consts, sql), nil
		}
		ss.mu.Unlock()
	}

	a, err := ClassifyWith(sql, fs)
	if exact {
		c.shards[maphash.String(c.seed, sql)%cacheShards].insert(sql, fs, a, err, nil)
	}
	if shaped && err == nil && shapeable(a) {
		if tree, perr := analysis.Parse(sql); perr == nil && analysis.Shaped(tree, sql, buf.Consts) {
			ss.insert(string(buf.Key), fs, withoutText(a), nil, append([]analysis.Const(nil), buf.Consts...))
		}
	}
	return a, err
}

// withoutText is a copy of a without the statements' texts (a shape hit
// takes them from its own text), so a shape entry does not keep the text.
func withoutText(a *Analysis) *Analysis {
	out := &Analysis{Statements: append([]Statement(nil), a.Statements...)}
	for i := range out.Statements {
		out.Statements[i].SQL = ""
	}
	return out
}

// insert stores a classification (or keeps one another goroutine stored
// first) under key.
func (s *shard) insert(key string, fs *analysis.Functions, a *Analysis, err error, consts []analysis.Const) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		e.fs, e.a, e.err, e.consts = fs, a, err, consts
		s.moveFront(e)
		return
	}
	e := &entry{key: key, fs: fs, a: a, err: err, consts: consts}
	s.m[key] = e
	s.pushFront(e)
	if len(s.m) > s.limit {
		old := s.head.prev
		s.unlink(old)
		delete(s.m, old.key)
	}
}

// shapeable: may a be reused for every text of its shape?
func shapeable(a *Analysis) bool {
	for i := range a.Statements {
		st := &a.Statements[i]
		if st.constSensitive || st.Prepare != nil {
			return false
		}
	}
	return true
}

// rebase returns a for the text sql, which has a's shape: the same bytes
// outside constants, constants now at consts instead of old. Statement
// bounds are never inside a constant, so each moves by the change in
// length of the constants before it.
func rebase(a *Analysis, old, consts []analysis.Const, sql string) *Analysis {
	var out *Analysis
	if len(a.Statements) == 1 {
		one := &struct {
			a  Analysis
			st [1]Statement
		}{}
		out = &one.a
		out.Statements = one.st[:]
	} else {
		out = &Analysis{Statements: make([]Statement, len(a.Statements))}
	}
	copy(out.Statements, a.Statements)
	i, delta := 0, int32(0)
	move := func(off int32) int32 {
		for i < len(old) && old[i].End <= off {
			delta += (consts[i].End - consts[i].Start) - (old[i].End - old[i].Start)
			i++
		}
		return off + delta
	}
	for k := range out.Statements {
		st := &out.Statements[k]
		st.start = move(st.start)
		st.end = move(st.end)
		st.SQL = sql[st.start:st.end]
	}
	return out
}

// Len returns the number of cached query texts.
func (c *Classifier) Len() int { return entries(&c.shards) }

// shapeLen returns the number of cached shapes.
func (c *Classifier) shapeLen() int { return entries(&c.shapes) }

func entries(ss *[cacheShards]shard) int {
	n := 0
	for i := range ss {
		s := &ss[i]
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
