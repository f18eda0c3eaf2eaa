package sqlpolicy

import (
	"fmt"
	"sync"
	"testing"
)

func TestClassifierCache(t *testing.T) {
	c := NewClassifier(64)
	a1, err := c.Classify("SELECT 1")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := c.Classify("SELECT 1")
	if a1 != a2 {
		t.Fatal("second lookup did not hit the cache")
	}
	// errors are cached with their fail-closed analysis
	b1, err1 := c.Classify("SELEC 1")
	b2, err2 := c.Classify("SELEC 1")
	if err1 == nil || err2 == nil || b1 != b2 || b1.Statements[0].Action != ActionAdmin {
		t.Fatalf("error caching: %v %v", err1, err2)
	}
	// bounded
	for i := 0; i < 2000; i++ {
		c.Classify(fmt.Sprintf("SELECT %d AS c%d", i, i)) // distinct shapes: each a miss
	}
	if n := c.Len(); n > 64+cacheShards || n < 32 {
		t.Fatalf("cache holds %d entries", n)
	}
	// recently used entries survive
	c2 := NewClassifier(cacheShards * 2)
	hot, _ := c2.Classify("SELECT 'hot'")
	for i := 0; i < 500; i++ {
		c2.Classify(fmt.Sprintf("SELECT %d AS c%d", i, i))
		c2.Classify("SELECT 'hot'")
	}
	if again, _ := c2.Classify("SELECT 'hot'"); again != hot {
		t.Fatal("hot entry evicted")
	}
	// size 0: no caching, still correct
	c0 := NewClassifier(0)
	x, _ := c0.Classify("DROP TABLE t")
	if x.Statements[0].Action != ActionDrop || c0.Len() != 0 {
		t.Fatal("uncached classifier")
	}
}

func TestClassifierConcurrent(t *testing.T) {
	c := NewClassifier(32)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				sql := fmt.Sprintf("DELETE FROM t%d WHERE id = %d", i%50, g)
				a, err := c.Classify(sql)
				if err != nil || a.Statements[0].Action != ActionDelete {
					t.Errorf("%s: %v %+v", sql, err, a)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}
