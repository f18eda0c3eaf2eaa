package main

import (
	"reflect"
	"testing"
)

func TestSplitGroups(t *testing.T) {
	for in, want := range map[string][]string{
		"":                  nil,
		" , ,":              nil,
		"analyst":           {"analyst"},
		" analyst, ingest ": {"analyst", "ingest"},
		"a,,b,":             {"a", "b"},
	} {
		if got := splitGroups(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitGroups(%q) = %#v, want %#v", in, got, want)
		}
	}
}
