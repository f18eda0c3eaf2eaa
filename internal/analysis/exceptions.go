package analysis

import (
	"sort"
	"strings"
)

// exception is one reviewed answer: a function name (exact), a family
// ("prefix*" or "*suffix"), its class and why. The table answers for every
// STABLE and VOLATILE built-in of PostgreSQL 15 and pgvector 0.8 (IMMUTABLE
// built-ins are pure by rule) and names admin functions wherever they are
// installed. TestClosedWorld fails when a server has a function this table
// and the rules have no answer for: a new PostgreSQL or extension version
// is reviewed here, never silently trusted.
type exception struct {
	pattern string
	class   Class
	reach   Reach
	sqlArg  int
	sqlArgc int
	action  string // policy action beyond the statement's own
	reason  string
}

func (e exception) verdict(name string) Verdict {
	return Verdict{Name: name, Class: e.class, Reach: e.reach, SQLArg: e.sqlArg, SQLArgc: e.sqlArgc, Action: e.action, Known: true, Reason: e.reason}
}

const (
	rPure      = "its result depends on its arguments and harmless session facts"
	rIO        = "type input/output or planner support: converts or estimates its argument"
	rPriv      = "privilege and visibility checks: a boolean about an object"
	rMeta      = "catalog metadata (definitions, sizes, ids, properties), no row values"
	rStats     = "statistics counters: numbers, no row values"
	rTime      = "time and date arithmetic (STABLE for the time zone setting)"
	rText      = "text, number and JSON formatting (STABLE for locale or time zone settings)"
	rSearch    = "full-text search functions over their arguments"
	rSession   = "reads this session's own settings or state, which it can only have written itself; writes of masked values into session state are refused"
	rServer    = "server and transaction facts (versions, ids, LSNs, recovery state), no row values"
	rFiles     = "reads or writes server files"
	rLO        = "large objects live outside every table's privileges"
	rBackends  = "signals or inspects other backends"
	rRepl      = "replication, WAL and backup control"
	rUpgrade   = "binary upgrade support, superuser only"
	rTrigger   = "trigger, handler or validator: internal, not callable for values"
	rAdvisory  = "advisory locks: a lock key carries a value out of the statement"
	rSequence  = "sequence state (nextval/setval change it; a value written there outlives the statement)"
	rVolPure   = "VOLATILE only because its result varies (randomness, clocks); takes no hidden input"
	rResetStat = "resets server-wide statistics"
)

var exceptions = []exception{
	// ---- reads hidden data -------------------------------------------------
	{pattern: "table_to_xml", class: ReadsHidden, reach: ReachRelation, reason: "returns every row of the relation named by its argument"},
	{pattern: "table_to_xmlschema", class: ReadsHidden, reach: ReachRelation, reason: "describes the relation named by its argument"},
	{pattern: "table_to_xml_and_xmlschema", class: ReadsHidden, reach: ReachRelation, reason: "returns every row of the relation named by its argument"},
	{pattern: "schema_to_xml", class: ReadsHidden, reach: ReachSchema, reason: "returns every row of every table in the schema"},
	{pattern: "schema_to_xmlschema", class: ReadsHidden, reach: ReachSchema, reason: "describes every table in the schema"},
	{pattern: "schema_to_xml_and_xmlschema", class: ReadsHidden, reach: ReachSchema, reason: "returns every row of every table in the schema"},
	{pattern: "database_to_xml", class: ReadsHidden, reach: ReachDatabase, reason: "returns every row of every table"},
	{pattern: "database_to_xmlschema", class: ReadsHidden, reach: ReachDatabase, reason: "describes every table"},
	{pattern: "database_to_xml_and_xmlschema", class: ReadsHidden, reach: ReachDatabase, reason: "returns every row of every table"},
	{pattern: "cursor_to_xml", class: ReadsHidden, reach: ReachCursor, reason: "returns the rows of a cursor opened earlier"},
	{pattern: "cursor_to_xmlschema", class: ReadsHidden, reach: ReachCursor, reason: "describes a cursor opened earlier"},
	{pattern: "query_to_xml", class: ReadsHidden, reach: ReachSQL, reason: "runs the SQL text of its first argument"},
	{pattern: "query_to_xmlschema", class: ReadsHidden, reach: ReachSQL, reason: "runs the SQL text of its first argument"},
	{pattern: "query_to_xml_and_xmlschema", class: ReadsHidden, reach: ReachSQL, reason: "runs the SQL text of its first argument"},
	{pattern: "ts_stat", class: ReadsHidden, reach: ReachSQL, reason: "runs the SQL text of its first argument and returns its words"},
	{pattern: "ts_rewrite", class: ReadsHidden, reach: ReachSQL, sqlArg: 1, sqlArgc: 2, reason: "the two-argument form runs the SQL text of its second argument"},
	{pattern: "pg_mcv_list_items", class: ReadsHidden, reach: ReachDatabase, reason: "returns the most common values of extended statistics"},
	{pattern: "pg_stat_get_activity", class: ReadsHidden, reach: ReachSession, reason: "statement text and settings of backends this role may see (its own session)"},
	{pattern: "pg_stat_get_backend_activity", class: ReadsHidden, reach: ReachSession, reason: "statement text of backends this role may see (its own session)"},
	{pattern: "current_setting", class: ReadsHidden, reach: ReachSession, reason: rSession},
	{pattern: "pg_show_all_settings", class: ReadsHidden, reach: ReachSession, reason: rSession},
	{pattern: "pg_cursor", class: ReadsHidden, reach: ReachSession, reason: rSession},
	{pattern: "pg_prepared_statement", class: ReadsHidden, reach: ReachSession, reason: rSession},
	{pattern: "current_query", class: ReadsHidden, reach: ReachSession, reason: rSession},
	{pattern: "pg_listening_channels", class: ReadsHidden, reach: ReachSession, reason: rSession},

	// ---- writes state --------------------------------------------------------
	{pattern: "set_config", class: WritesState, reason: "changes a setting (policy checks the setting name; masked values may not be stored)"},
	{pattern: "pg_notify", class: WritesState, reason: "sends a payload to every listener"},
	{pattern: "setseed", class: WritesState, reason: "seeds random(): its argument is recoverable from later random() results"},
	{pattern: "nextval", class: WritesState, reason: rSequence},
	{pattern: "setval", class: WritesState, action: "update", reason: rSequence},
	{pattern: "currval", class: Pure, reason: "reads this session's last sequence value"},
	{pattern: "lastval", class: Pure, reason: "reads this session's last sequence value"},
	{pattern: "pg_sequence_last_value", class: Pure, reason: rMeta},
	{pattern: "pg_advisory*", class: WritesState, reason: rAdvisory},
	{pattern: "pg_try_advisory*", class: WritesState, reason: rAdvisory},
	{pattern: "pg_sleep", class: WritesState, reason: "its argument becomes a measurable delay"},
	{pattern: "pg_sleep_for", class: WritesState, reason: "its argument becomes a measurable delay"},
	{pattern: "pg_sleep_until", class: WritesState, reason: "its argument becomes a measurable delay"},
	{pattern: "pg_stat_clear_snapshot", class: Pure, reason: "discards this session's statistics snapshot"},
	{pattern: "pg_stat_force_next_flush", class: Pure, reason: "flushes this session's statistics"},
	{pattern: "pg_export_snapshot", class: Admin, action: "admin", reason: "exports a snapshot to other sessions"},
	{pattern: "brin_summarize*", class: Admin, action: "admin", reason: "rewrites index summaries (maintenance)"},
	{pattern: "brin_desummarize_range", class: Admin, action: "admin", reason: "rewrites index summaries (maintenance)"},
	{pattern: "gin_clean_pending_list", class: Admin, action: "admin", reason: "index maintenance"},

	// ---- admin ---------------------------------------------------------------
	{pattern: "pg_read_file", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_read_file_old", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_read_binary_file", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_ls_*", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_stat_file", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_file_*", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_logdir_ls", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_current_logfile", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_show_all_file_settings", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_hba_file_rules", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_ident_file_mappings", class: Admin, action: "admin", reason: rFiles},
	{pattern: "loread", class: Admin, action: "admin", reason: rLO},
	{pattern: "lowrite", class: Admin, action: "admin", reason: rLO},
	{pattern: "lo_*", class: Admin, action: "admin", reason: rLO},
	{pattern: "dblink*", class: Admin, action: "admin", reason: "connects to other databases"},
	{pattern: "pg_terminate_backend", class: Admin, action: "admin", reason: rBackends},
	{pattern: "pg_cancel_backend", class: Admin, action: "admin", reason: rBackends},
	{pattern: "pg_log_backend_memory_contexts", class: Admin, action: "admin", reason: rBackends},
	{pattern: "pg_get_backend_memory_contexts", class: Admin, action: "admin", reason: rBackends},
	{pattern: "pg_get_shmem_allocations", class: Admin, action: "admin", reason: rBackends},
	{pattern: "pg_reload_conf", class: Admin, action: "admin", reason: "reloads the server configuration"},
	{pattern: "pg_rotate_logfile", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_rotate_logfile_old", class: Admin, action: "admin", reason: rFiles},
	{pattern: "pg_promote", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_backup_start", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_backup_stop", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_start_backup", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_stop_backup", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_switch_wal", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_create_restore_point", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_create_*_replication_slot", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_create_physical_replication_slot", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_create_logical_replication_slot", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_drop_replication_slot", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_copy_physical_replication_slot", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_copy_logical_replication_slot", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_replication_slot_advance", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_logical_slot_*", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_logical_emit_message", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_wal_replay_*", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_replication_origin_*", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_replication_origin_oid", class: Pure, reason: rMeta},
	{pattern: "pg_show_replication_origin_status", class: Admin, action: "admin", reason: rRepl},
	{pattern: "pg_import_system_collations", class: Admin, action: "admin", reason: "creates collations"},
	{pattern: "pg_stat_statements_reset", class: Admin, action: "admin", reason: rResetStat},
	{pattern: "pg_stat_reset*", class: Admin, action: "admin", reason: rResetStat},
	{pattern: "pg_background_*", class: Admin, action: "admin", reason: "runs SQL in another backend"},
	{pattern: "binary_upgrade_*", class: Admin, action: "admin", reason: rUpgrade},
	{pattern: "pg_nextoid", class: Admin, action: "admin", reason: rUpgrade},
	{pattern: "pg_stop_making_pinned_objects", class: Admin, action: "admin", reason: rUpgrade},
	{pattern: "pg_extension_config_dump", class: Admin, action: "admin", reason: "marks extension tables for dumps"},
	{pattern: "pg_control_*", class: Admin, action: "admin", reason: "server control file"},
	{pattern: "system", class: Admin, action: "admin", reason: rTrigger + " (TABLESAMPLE method)"},
	{pattern: "bernoulli", class: Admin, action: "admin", reason: rTrigger + " (TABLESAMPLE method)"},

	// ---- internal: triggers, handlers, validators ----------------------------
	{pattern: "RI_FKey_*", class: Admin, action: "admin", reason: rTrigger},
	{pattern: "*handler", class: Admin, action: "admin", reason: rTrigger},
	{pattern: "*_handler", class: Admin, action: "admin", reason: rTrigger},
	{pattern: "*_validator", class: Admin, action: "admin", reason: rTrigger},
	{pattern: "plpgsql_*", class: Admin, action: "admin", reason: rTrigger},
	{pattern: "*_support", class: Admin, action: "admin", reason: rTrigger + " (index support)"},
	{pattern: "suppress_redundant_updates_trigger", class: Admin, action: "admin", reason: rTrigger},
	{pattern: "tsvector_update_trigger*", class: Admin, action: "admin", reason: rTrigger},
	{pattern: "unique_key_recheck", class: Admin, action: "admin", reason: rTrigger},
	{pattern: "dsnowball_*", class: Admin, action: "admin", reason: rTrigger + " (text search dictionary)"},
	{pattern: "amvalidate", class: Pure, reason: rMeta},

	// ---- pure: VOLATILE only because the result varies --------------------------
	{pattern: "random", class: Pure, reason: rVolPure},
	{pattern: "random_normal", class: Pure, reason: rVolPure},
	{pattern: "gen_random_uuid", class: Pure, reason: rVolPure},
	{pattern: "clock_timestamp", class: Pure, reason: rVolPure},
	{pattern: "timeofday", class: Pure, reason: rVolPure},
	{pattern: "txid_status", class: Pure, reason: rServer},
	{pattern: "pg_xact_status", class: Pure, reason: rServer},
	{pattern: "pg_xact_commit_timestamp*", class: Pure, reason: rServer},
	{pattern: "pg_last_committed_xact", class: Pure, reason: rServer},
	{pattern: "pg_current_wal_*", class: Pure, reason: rServer},
	{pattern: "pg_last_wal_*", class: Pure, reason: rServer},
	{pattern: "pg_last_xact_replay_timestamp", class: Pure, reason: rServer},
	{pattern: "pg_is_in_recovery", class: Pure, reason: rServer},
	{pattern: "pg_is_wal_replay_paused", class: Pure, reason: rServer},
	{pattern: "pg_get_wal_*", class: Pure, reason: rServer},
	{pattern: "pg_jit_available", class: Pure, reason: rServer},
	{pattern: "pg_notification_queue_usage", class: Pure, reason: rServer},
	{pattern: "pg_get_multixact_members", class: Pure, reason: rServer},
	{pattern: "pg_prepared_xact", class: Pure, reason: rServer},
	{pattern: "pg_lock_status", class: Pure, reason: rServer},
	{pattern: "pg_blocking_pids", class: Pure, reason: rServer},
	{pattern: "pg_safe_snapshot_blocking_pids", class: Pure, reason: rServer},
	{pattern: "pg_isolation_test_session_is_blocked", class: Pure, reason: rServer},
	{pattern: "pg_stat_have_stats", class: Pure, reason: rStats},
	{pattern: "pg_stat_get_*", class: Pure, reason: rStats},
	{pattern: "pg_stat_get_xact_*", class: Pure, reason: rStats},
	{pattern: "pg_collation_actual_version", class: Pure, reason: rMeta},
	{pattern: "pg_database_collation_actual_version", class: Pure, reason: rMeta},
	{pattern: "pg_partition_*", class: Pure, reason: rMeta},
	{pattern: "*_size", class: Pure, reason: rMeta},
	{pattern: "pg_size_pretty", class: Pure, reason: rMeta},
	{pattern: "currtid2", class: Pure, reason: rMeta},

	// ---- pure: STABLE built-ins ----------------------------------------------------
	{pattern: "*_in", class: Pure, reason: rIO},
	{pattern: "*in", class: Pure, reason: rIO},
	{pattern: "*_out", class: Pure, reason: rIO},
	{pattern: "*out", class: Pure, reason: rIO},
	{pattern: "*_recv", class: Pure, reason: rIO},
	{pattern: "*recv", class: Pure, reason: rIO},
	{pattern: "*_send", class: Pure, reason: rIO},
	{pattern: "*send", class: Pure, reason: rIO},
	{pattern: "*sel", class: Pure, reason: rIO},
	{pattern: "*_typanalyze", class: Pure, reason: rIO},
	{pattern: "has_*", class: Pure, reason: rPriv},
	{pattern: "*_is_visible", class: Pure, reason: rPriv},
	{pattern: "pg_has_role", class: Pure, reason: rPriv},
	{pattern: "row_security_active", class: Pure, reason: rPriv},
	{pattern: "pg_get_*", class: Pure, reason: rMeta},
	{pattern: "pg_*_is_updatable", class: Pure, reason: rMeta},
	{pattern: "pg_relation_is_publishable", class: Pure, reason: rMeta},
	{pattern: "pg_relation_file*", class: Pure, reason: rMeta},
	{pattern: "pg_filenode_relation", class: Pure, reason: rMeta},
	{pattern: "pg_*_has_property", class: Pure, reason: rMeta},
	{pattern: "pg_settings_get_flags", class: Pure, reason: rMeta},
	{pattern: "pg_sequence_parameters", class: Pure, reason: rMeta},
	{pattern: "pg_tablespace_*", class: Pure, reason: rMeta},
	{pattern: "pg_options_to_table", class: Pure, reason: rMeta},
	{pattern: "pg_describe_object", class: Pure, reason: rMeta},
	{pattern: "pg_identify_object*", class: Pure, reason: rMeta},
	{pattern: "pg_available_extension*", class: Pure, reason: rMeta},
	{pattern: "pg_extension_update_paths", class: Pure, reason: rMeta},
	{pattern: "pg_event_trigger_*", class: Pure, reason: rMeta},
	{pattern: "pg_column_size", class: Pure, reason: "the size of its argument (derived from it)"},
	{pattern: "pg_column_compression", class: Pure, reason: rMeta},
	{pattern: "pg_typeof", class: Pure, reason: rMeta},
	{pattern: "pg_collation_for", class: Pure, reason: rMeta},
	{pattern: "format_type", class: Pure, reason: rMeta},
	{pattern: "*_description", class: Pure, reason: rMeta},
	{pattern: "_pg_*", class: Pure, reason: rMeta + " (information_schema helpers)"},
	{pattern: "aclexplode", class: Pure, reason: rMeta},
	{pattern: "oidvectortypes", class: Pure, reason: rMeta},
	{pattern: "pg_my_temp_schema", class: Pure, reason: rMeta},
	{pattern: "pg_is_other_temp_schema", class: Pure, reason: rMeta},
	{pattern: "pg_trigger_depth", class: Pure, reason: rMeta},
	{pattern: "pg_config", class: Pure, reason: rServer},
	{pattern: "version", class: Pure, reason: rServer},
	{pattern: "pg_conf_load_time", class: Pure, reason: rServer},
	{pattern: "pg_postmaster_start_time", class: Pure, reason: rServer},
	{pattern: "pg_backend_pid", class: Pure, reason: rServer},
	{pattern: "pg_current_snapshot", class: Pure, reason: rServer},
	{pattern: "pg_current_xact_id*", class: Pure, reason: rServer},
	{pattern: "txid_current*", class: Pure, reason: rServer},
	{pattern: "mxid_age", class: Pure, reason: rServer},
	{pattern: "age", class: Pure, reason: rTime},
	{pattern: "inet_client_*", class: Pure, reason: rServer},
	{pattern: "inet_server_*", class: Pure, reason: rServer},
	{pattern: "current_database", class: Pure, reason: rServer},
	{pattern: "current_schema", class: Pure, reason: rServer},
	{pattern: "current_schemas", class: Pure, reason: rServer},
	{pattern: "current_user", class: Pure, reason: rServer},
	{pattern: "session_user", class: Pure, reason: rServer},
	{pattern: "getpgusername", class: Pure, reason: rServer},
	{pattern: "getdatabaseencoding", class: Pure, reason: rServer},
	{pattern: "pg_client_encoding", class: Pure, reason: rServer},
	{pattern: "pg_encoding_to_char", class: Pure, reason: rServer},
	{pattern: "pg_char_to_encoding", class: Pure, reason: rServer},
	{pattern: "pg_timezone_*", class: Pure, reason: rTime},
	{pattern: "now", class: Pure, reason: rTime},
	{pattern: "statement_timestamp", class: Pure, reason: rTime},
	{pattern: "transaction_timestamp", class: Pure, reason: rTime},
	{pattern: "date*", class: Pure, reason: rTime},
	{pattern: "time*", class: Pure, reason: rTime},
	{pattern: "interval*", class: Pure, reason: rTime},
	{pattern: "make_timestamptz", class: Pure, reason: rTime},
	{pattern: "extract", class: Pure, reason: rTime},
	{pattern: "date_part", class: Pure, reason: rTime},
	{pattern: "overlaps", class: Pure, reason: rTime},
	{pattern: "in_range", class: Pure, reason: rTime},
	{pattern: "generate_series", class: Pure, reason: rTime},
	{pattern: "to_*", class: Pure, reason: rText},
	{pattern: "json*", class: Pure, reason: rText},
	{pattern: "array_to_json", class: Pure, reason: rText},
	{pattern: "row_to_json", class: Pure, reason: rText},
	{pattern: "array_to_string", class: Pure, reason: rText},
	{pattern: "concat", class: Pure, reason: rText},
	{pattern: "concat_ws", class: Pure, reason: rText},
	{pattern: "format", class: Pure, reason: rText},
	{pattern: "anytextcat", class: Pure, reason: rText},
	{pattern: "quote_literal", class: Pure, reason: rText},
	{pattern: "quote_nullable", class: Pure, reason: rText},
	{pattern: "convert", class: Pure, reason: rText},
	{pattern: "convert_from", class: Pure, reason: rText},
	{pattern: "convert_to", class: Pure, reason: rText},
	{pattern: "length", class: Pure, reason: rText},
	{pattern: "money", class: Pure, reason: rText},
	{pattern: "float*", class: Pure, reason: rText},
	{pattern: "int*", class: Pure, reason: rText},
	{pattern: "text*", class: Pure, reason: rText},
	{pattern: "numeric*", class: Pure, reason: rText},
	{pattern: "cash_*", class: Pure, reason: rText},
	{pattern: "enum_*", class: Pure, reason: rText},
	{pattern: "reg*", class: Pure, reason: rMeta + " (object name lookups)"},
	{pattern: "xml", class: Pure, reason: rText},
	{pattern: "xml_is_well_formed", class: Pure, reason: rText},
	{pattern: "ts_*", class: Pure, reason: rSearch},
	{pattern: "*to_tsquery", class: Pure, reason: rSearch},
	{pattern: "get_current_ts_config", class: Pure, reason: rSearch},
}

var (
	exact    map[string]*exception
	prefixes []*exception // longest first
	suffixes []*exception // longest first
)

func init() {
	exact = map[string]*exception{}
	for i := range exceptions {
		e := &exceptions[i]
		switch {
		case strings.HasSuffix(e.pattern, "*") && strings.HasPrefix(e.pattern, "*"):
			panic("analysis: pattern with two stars: " + e.pattern)
		case strings.HasSuffix(e.pattern, "*"):
			prefixes = append(prefixes, e)
		case strings.HasPrefix(e.pattern, "*"):
			suffixes = append(suffixes, e)
		case strings.Contains(e.pattern, "*"):
			prefixes = append(prefixes, e) // infix star: matched as a glob below
		default:
			if exact[e.pattern] != nil {
				panic("analysis: duplicate exception " + e.pattern)
			}
			exact[e.pattern] = e
		}
	}
	sort.SliceStable(prefixes, func(i, j int) bool { return len(prefixes[i].pattern) > len(prefixes[j].pattern) })
	sort.SliceStable(suffixes, func(i, j int) bool { return len(suffixes[i].pattern) > len(suffixes[j].pattern) })
}

// lookupException finds the reviewed answer for a function name: an exact
// entry, else the longest matching family. Admin families are checked
// before pure ones, so a pure family (pg_stat_get_*) never hides an admin
// name (pg_stat_reset*).
func lookupException(name string) (exception, bool) {
	if e := exact[name]; e != nil {
		return *e, true
	}
	var best *exception
	for _, list := range [][]*exception{prefixes, suffixes} {
		for _, e := range list {
			if !globMatch(e.pattern, name) {
				continue
			}
			if best == nil || (e.class == Admin && best.class != Admin) ||
				(e.class == best.class && len(e.pattern) > len(best.pattern)) {
				best = e
			}
		}
	}
	if best == nil {
		return exception{}, false
	}
	return *best, true
}

// globMatch matches a pattern with one '*' (at the start, the end or
// inside) against name.
func globMatch(pattern, name string) bool {
	i := strings.IndexByte(pattern, '*')
	if i < 0 {
		return pattern == name
	}
	pre, suf := pattern[:i], pattern[i+1:]
	return len(name) >= len(pre)+len(suf) && strings.HasPrefix(name, pre) && strings.HasSuffix(name, suf)
}
