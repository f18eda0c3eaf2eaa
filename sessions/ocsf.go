package sessions

import (
	"encoding/json"
	"net"
	"strconv"
)

// OCSF 1.3.0 Datastore Activity (class 6005, category 6 Application Activity).
const (
	ocsfVersion   = "1.3.0"
	ocsfClassUID  = 6005
	ocsfCategory  = 6
	activityOther = 99
)

var ocsfActivityNames = map[int]string{0: "Unknown", 1: "Read", 2: "Update", 3: "Connect", 4: "Query", 5: "Write", 6: "Create", 7: "Delete", 99: "Other"}

// actionActivity maps pgwarden actions to OCSF activity_id; the first
// action of a statement with the highest rank wins (writes over reads).
var actionActivity = map[string]struct{ id, rank int }{
	"search": {4, 1}, "read": {1, 1}, "export": {1, 2}, "insert": {5, 3}, "update": {2, 3},
	"delete": {7, 4}, "bulk_delete": {7, 4}, "truncate": {7, 4}, "drop": {7, 4},
	"ddl": {6, 3}, "index": {6, 3}, "admin": {activityOther, 2}, "session": {activityOther, 0},
}

type ocsfGroup struct {
	Name string `json:"name"`
}

type ocsfEvent struct {
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	TypeUID      int    `json:"type_uid"`
	TypeName     string `json:"type_name"`
	Time         int64  `json:"time"`
	TimeDT       string `json:"time_dt"`
	SeverityID   int    `json:"severity_id"`
	Severity     string `json:"severity"`
	StatusID     int    `json:"status_id"`
	Status       string `json:"status"`
	StatusDetail string `json:"status_detail,omitempty"`
	Message      string `json:"message,omitempty"`
	Duration     int64  `json:"duration,omitempty"` // ms
	Metadata     struct {
		Version        string `json:"version"`
		UID            string `json:"uid"` // the event hash: idempotency key
		CorrelationUID string `json:"correlation_uid,omitempty"`
		Sequence       int64  `json:"sequence"`
		LogName        string `json:"log_name"`
		Product        struct {
			Name       string `json:"name"`
			VendorName string `json:"vendor_name"`
		} `json:"product"`
	} `json:"metadata"`
	Actor struct {
		User struct {
			Name   string      `json:"name,omitempty"`
			UID    string      `json:"uid,omitempty"`
			Groups []ocsfGroup `json:"groups,omitempty"`
		} `json:"user"`
		Session struct {
			UID string `json:"uid,omitempty"`
		} `json:"session"`
		AppName string `json:"app_name,omitempty"`
		// AppUID is the acting party of a delegated session (record field
		// actor): OCSF's "client application or service that initiated
		// the activity ... in conjunction with the user".
		AppUID string `json:"app_uid,omitempty"`
	} `json:"actor"`
	SrcEndpoint *struct {
		IP   string `json:"ip,omitempty"`
		Port int    `json:"port,omitempty"`
	} `json:"src_endpoint,omitempty"`
	Database *struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		TypeID int    `json:"type_id"`
	} `json:"database,omitempty"`
	QueryInfo *struct {
		QueryString string `json:"query_string"`
	} `json:"query_info,omitempty"`
	Unmapped map[string]any `json:"unmapped,omitempty"`
}

// OCSF converts one event into an OCSF Datastore Activity object (the
// mapping table is in docs/recording.md). Result rows are not exported.
func OCSF(ev *Event) ([]byte, error) {
	var o ocsfEvent
	o.ClassUID, o.ClassName, o.CategoryUID, o.CategoryName = ocsfClassUID, "Datastore Activity", ocsfCategory, "Application Activity"
	act := activityOther
	name := ""
	switch ev.Type {
	case TypeSessionStart:
		act = 3
	case TypeSessionEnd:
		name = "Disconnect"
	case TypeApproval:
		name = "Approval"
	case TypeError:
		name = "Error"
	case TypeStatement:
		rank := -1
		for _, a := range ev.Actions {
			if m, ok := actionActivity[a]; ok && m.rank > rank {
				act, rank = m.id, m.rank
			}
		}
	}
	if name == "" {
		name = ocsfActivityNames[act]
	}
	o.ActivityID, o.ActivityName = act, name
	o.TypeUID, o.TypeName = ocsfClassUID*100+act, "Datastore Activity: "+name
	t := ev.TimeValue()
	o.Time, o.TimeDT = t.UnixMilli(), ev.Time
	o.StatusID, o.Status = 1, "Success"
	o.SeverityID, o.Severity = 1, "Informational"
	switch {
	case ev.Decision == DecisionDeny || ev.Decision == DecisionDenied:
		o.StatusID, o.Status, o.SeverityID, o.Severity = 2, "Failure", 3, "Medium"
	case ev.Decision == DecisionHold:
		o.StatusID, o.Status, o.SeverityID, o.Severity = 99, "Held for approval", 2, "Low"
	case ev.Error != "" || ev.Type == TypeError:
		o.StatusID, o.Status, o.SeverityID, o.Severity = 2, "Failure", 2, "Low"
	}
	o.StatusDetail = ev.Error
	if ev.Reason != "" && o.StatusDetail == "" {
		o.StatusDetail = ev.Reason
	}
	o.Duration = ev.DurationUS / 1000
	o.Metadata.Version, o.Metadata.UID, o.Metadata.CorrelationUID, o.Metadata.Sequence, o.Metadata.LogName = ocsfVersion, ev.Hash, ev.Session, ev.Seq, "pgwarden.sessions"
	o.Metadata.Product.Name, o.Metadata.Product.VendorName = "pgwarden", "pgwarden"
	o.Actor.User.Name, o.Actor.User.UID = ev.User, ev.User
	for _, g := range ev.Groups {
		o.Actor.User.Groups = append(o.Actor.User.Groups, ocsfGroup{Name: g})
	}
	o.Actor.Session.UID, o.Actor.AppName, o.Actor.AppUID = ev.Session, ev.ApplicationName, ev.Actor
	if ev.ClientAddr != "" {
		o.SrcEndpoint = &struct {
			IP   string `json:"ip,omitempty"`
			Port int    `json:"port,omitempty"`
		}{IP: ev.ClientAddr}
		if h, p, err := net.SplitHostPort(ev.ClientAddr); err == nil {
			o.SrcEndpoint.IP = h
			o.SrcEndpoint.Port, _ = strconv.Atoi(p)
		}
	}
	if ev.Database != "" {
		o.Database = &struct {
			Name   string `json:"name"`
			Type   string `json:"type"`
			TypeID int    `json:"type_id"`
		}{ev.Database, "Relational", 1}
	}
	if ev.SQL != "" {
		o.QueryInfo = &struct {
			QueryString string `json:"query_string"`
		}{ev.SQL}
	}
	u := map[string]any{"pgwarden_type": ev.Type, "prev_hash": ev.PrevHash}
	if ev.Decision != "" {
		u["decision"] = ev.Decision
	}
	if len(ev.Actions) > 0 {
		u["actions"] = ev.Actions
	}
	if ev.BackendUser != "" {
		u["backend_user"] = ev.BackendUser
	}
	if ev.Profile != "" {
		u["profile"] = ev.Profile
	}
	if ev.Type == TypeStatement {
		u["rows_total"] = ev.RowsTotal
		u["rows_recorded"] = len(ev.Rows)
	}
	if ev.ApprovalID != "" {
		u["approval_id"] = ev.ApprovalID
	}
	if ev.ApprovalState != "" {
		u["approval_state"] = ev.ApprovalState
	}
	if ev.DecidedBy != "" {
		u["decided_by"] = ev.DecidedBy
	}
	if ev.DecidedByActor != "" {
		u["decided_by_actor"] = ev.DecidedByActor
	}
	if ev.Type == TypeSessionEnd {
		u["reason"] = ev.Reason
	}
	o.Unmapped = u
	return json.Marshal(&o)
}
