package sqlpolicy

import "strings"

// Action is a statement class of docs/SPEC.md ("Actions"). Policy grants
// actions to groups; every statement needs one (or, for statements that do
// several things at once, several — see Statement.Requires).
type Action string

// The actions of docs/SPEC.md; config.Actions lists the same names.
const (
	ActionSearch     Action = "search"
	ActionRead       Action = "read"
	ActionInsert     Action = "insert"
	ActionUpdate     Action = "update"
	ActionDelete     Action = "delete"
	ActionBulkDelete Action = "bulk_delete"
	ActionTruncate   Action = "truncate"
	ActionDDL        Action = "ddl"
	ActionDrop       Action = "drop"
	ActionIndex      Action = "index"
	ActionExport     Action = "export"
	ActionAdmin      Action = "admin"
	ActionSession    Action = "session"
)

// All is the pseudo-action of the configuration that allows every action.
const All = "all"

// actionOrder lists the actions from weakest to strongest. The strongest
// action a statement needs is its primary Action (the one messages name).
var actionOrder = [...]Action{ActionSession, ActionRead, ActionSearch, ActionExport, ActionInsert, ActionUpdate, ActionDelete, ActionBulkDelete, ActionIndex, ActionDDL, ActionTruncate, ActionDrop, ActionAdmin}

// Actions returns every action, weakest first.
func Actions() []Action { return append([]Action(nil), actionOrder[:]...) }

// ParseAction returns the action named s.
func ParseAction(s string) (Action, bool) {
	for _, a := range actionOrder {
		if string(a) == s {
			return a, true
		}
	}
	return "", false
}

func (a Action) rank() int {
	for i, x := range actionOrder {
		if x == a {
			return i
		}
	}
	return len(actionOrder) // unknown: stronger than anything
}

// actionSet is a bit set over actionOrder.
type actionSet uint16

const allActions actionSet = 1<<len(actionOrder) - 1

func setOf(as ...Action) actionSet {
	var s actionSet
	for _, a := range as {
		s = s.with(a)
	}
	return s
}

func (s actionSet) with(a Action) actionSet {
	r := a.rank()
	if r >= len(actionOrder) {
		return s
	}
	return s | 1<<r
}

func (s actionSet) has(a Action) bool {
	r := a.rank()
	return r < len(actionOrder) && s&(1<<r) != 0
}

// strongest returns the strongest action in s (ActionSession for the empty set).
func (s actionSet) strongest() Action {
	for i := len(actionOrder) - 1; i >= 0; i-- {
		if s&(1<<i) != 0 {
			return actionOrder[i]
		}
	}
	return ActionSession
}

func (s actionSet) list() []Action {
	var out []Action
	for i, a := range actionOrder {
		if s&(1<<i) != 0 {
			out = append(out, a)
		}
	}
	return out
}

func joinActions(as []Action) string {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(a))
	}
	return b.String()
}
