package analysis

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func userFuncs() []Func {
	return append(append([]Func(nil), Builtin()...),
		Func{OID: 20001, Schema: "public", Name: "purge_note", Volatility: 'v', SecDef: true, Language: "sql", Kind: 'f'},
		Func{OID: 20002, Schema: "public", Name: "slugify", Volatility: 'i', Language: "sql", Kind: 'f'},
		Func{OID: 20003, Schema: "app", Name: "bump", Volatility: 'v', Language: "plpgsql", Kind: 'f'},
		// a user function shadowing a built-in name in another schema
		Func{OID: 20004, Schema: "app", Name: "lower", Volatility: 'v', Language: "sql", Kind: 'f'},
	)
}

func TestLookupClosedWorld(t *testing.T) {
	fs := NewFunctions(userFuncs(), Options{Allow: []string{"public.slugify", "bump"}}, "catalog")
	cases := []struct {
		schema, name string
		class        Class
		known        bool
		action       string
		reason       string
	}{
		{"", "md5", Pure, true, "", "IMMUTABLE"},
		{"pg_catalog", "lower", Pure, true, "", "IMMUTABLE"},
		{"", "lower", WritesState, true, "admin", "VOLATILE"}, // app.lower may be on the search path
		{"", "table_to_xml", ReadsHidden, true, "", "every row"},
		{"", "set_config", WritesState, true, "", "setting"},
		{"", "pg_read_file", Admin, true, "admin", "files"},
		{"", "purge_note", WritesState, true, "admin", "SECURITY DEFINER"},
		{"", "slugify", Pure, true, "", "policy.functions.allow"},
		{"app", "bump", WritesState, true, "update", "action update"},
		{"", "no_such_fn", ReadsHidden, false, "admin", "policy.functions.allow"},
		{"", "dblink_exec", Admin, true, "admin", "other databases"}, // admin even where not installed
		{"cron", "schedule", Admin, true, "admin", "cron"},
	}
	for _, c := range cases {
		v := fs.Lookup(c.schema, c.name)
		if v.Class != c.class || v.Known != c.known || v.Action != c.action || !strings.Contains(v.Reason, c.reason) {
			t.Errorf("%s.%s = %+v, want class %v known %v action %q reason ~%q", c.schema, c.name, v, c.class, c.known, c.action, c.reason)
		}
	}
	if v := fs.ByOID(20001); v.Name != "public.purge_note" || v.Action != "admin" {
		t.Errorf("ByOID(purge_note) = %+v", v)
	}
	if v := fs.ByOID(99999); v.Known || v.Action != "admin" {
		t.Errorf("ByOID(unknown) = %+v", v)
	}
	if v := fs.Lookup("", "md5"); v.MayWrite() {
		t.Errorf("md5 may write: %+v", v)
	}
	if v := fs.Lookup("", "pg_notify"); !v.MayWrite() {
		t.Errorf("pg_notify may not write: %+v", v)
	}
}

func TestBuiltinSnapshotIsClassified(t *testing.T) {
	fs := BuiltinFunctions(Options{}, "")
	n := 0
	for _, e := range fs.All() {
		n++
		if !e.V.Known {
			t.Errorf("%s: built-in without a reviewed class: %s", e.V.Name, e.V.Reason)
		}
	}
	if n < 3000 {
		t.Fatalf("built-in snapshot has %d functions", n)
	}
	if v := fs.Lookup("", "l2_distance"); !v.Known || v.Class != Pure {
		t.Errorf("pgvector's l2_distance = %+v", v)
	}
}

func TestCatalogLoadsRefreshesAndFallsBack(t *testing.T) {
	now := time.Unix(1000, 0)
	var calls atomic.Int32
	var fail atomic.Bool
	load := func(ctx context.Context, db string) ([]Func, error) {
		calls.Add(1)
		if fail.Load() {
			return nil, errors.New("connection refused")
		}
		return userFuncs(), nil
	}
	c := NewCatalog(load, CatalogOptions{MaxAge: time.Minute, Now: func() time.Time { return now }}, "")
	fs := c.Functions(context.Background(), "app")
	if fs.Source != "catalog" || fs.Lookup("", "purge_note").Known != true {
		t.Fatalf("first load: %s %+v", fs.Source, fs.Lookup("", "purge_note"))
	}
	if c.Functions(context.Background(), "app") != fs || calls.Load() != 1 {
		t.Fatalf("cached snapshot not reused (%d loads)", calls.Load())
	}
	// DDL: the next use loads again, synchronously.
	c.Invalidate()
	fail.Store(true)
	fs2 := c.Functions(context.Background(), "app")
	if fs2.Source != "built-in snapshot" || !strings.Contains(fs2.Degraded, "connection refused") {
		t.Fatalf("failed load after Invalidate: %s %q", fs2.Source, fs2.Degraded)
	}
	if v := fs2.Lookup("", "purge_note"); v.Known || !strings.Contains(v.Reason, "could not be read") {
		t.Fatalf("unknown function with a degraded catalog: %+v", v)
	}
	// A failed first load of another database is fail closed too.
	if v := c.Functions(context.Background(), "other").Lookup("", "slugify"); v.Known {
		t.Fatalf("slugify known without a catalog: %+v", v)
	}
	// Refresh: a statement naming an unknown function reloads, at most
	// once per minAge.
	fail.Store(false)
	now = now.Add(2 * time.Second)
	n0 := calls.Load()
	fs3 := c.Refresh(context.Background(), "app", time.Second)
	if fs3.Source != "catalog" || calls.Load() != n0+1 {
		t.Fatalf("Refresh did not reload: %s, %d loads", fs3.Source, calls.Load()-n0)
	}
	// Within minAge Refresh waits out the rest of it; a statement whose
	// ctx ends first keeps the snapshot in use without a load.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	if c.Refresh(cctx, "app", time.Second) != fs3 || calls.Load() != n0+1 {
		t.Fatalf("Refresh within minAge reloaded (%d loads)", calls.Load()-n0)
	}
	cancel()
	now = now.Add(2 * time.Second)
	if c.Refresh(context.Background(), "app", time.Second) == fs3 {
		t.Fatal("Refresh after minAge did not reload")
	}
	// Real clock: a function created just after a load is found by a
	// Refresh moments later (it waits out minAge, then loads).
	rc := NewCatalog(load, CatalogOptions{MaxAge: time.Minute}, "")
	first := rc.Functions(context.Background(), "app")
	n1 := calls.Load()
	if again := rc.Refresh(context.Background(), "app", 30*time.Millisecond); again == first || calls.Load() != n1+1 {
		t.Fatalf("Refresh just after a load did not reload (%d loads)", calls.Load()-n1)
	}
	// Timeout: a loader that hangs is cut off.
	hang := NewCatalog(func(ctx context.Context, db string) ([]Func, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, CatalogOptions{Timeout: 20 * time.Millisecond}, "")
	if d := hang.Functions(context.Background(), "x").Degraded; !strings.Contains(d, "timed out") {
		t.Fatalf("hanging load: %q", d)
	}
}

func TestExceptionMatching(t *testing.T) {
	for name, want := range map[string]Class{
		"pg_stat_reset_shared": Admin, // admin family beats the pure pg_stat_* family
		"pg_stat_get_numscans": Pure,
		"lo_import":            Admin,
		"pg_ls_waldir":         Admin,
		"ts_stat":              ReadsHidden, // exact beats ts_*
		"ts_headline":          Pure,
	} {
		e, ok := lookupException(name)
		if !ok || e.class != want {
			t.Errorf("%s: %v %v, want %v", name, e.class, ok, want)
		}
	}
}
