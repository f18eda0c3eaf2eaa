package sqlpolicy

import (
	"strings"

	"github.com/pgwarden/pgwarden/internal/parsesafe"
)

// Names below are compared with identifiers as the parser returns them:
// unquoted identifiers are folded to lower case, quoted ones are kept as
// written, and U&"..." escapes are already decoded. So pg_read_file,
// PG_READ_FILE and "pg_read_file" all match, while "PG_READ_FILE" (quoted,
// upper case) is a different function that only a user could have created.

// distanceOps are pgvector's distance operators.
var distanceOps = map[string]bool{
	"<->": true, // L2
	"<#>": true, // negative inner product
	"<=>": true, // cosine
	"<+>": true, // L1
	"<~>": true, // Hamming (bit)
	"<%>": true, // Jaccard (bit)
}

// distanceFuncs are pgvector's distance (and dimension) functions.
var distanceFuncs = map[string]bool{
	"l2_distance": true, "cosine_distance": true, "inner_product": true,
	"l1_distance": true, "hamming_distance": true, "jaccard_distance": true,
	"vector_dims": true, "vector_l2_squared_distance": true,
	"vector_negative_inner_product": true, "vector_spherical_distance": true,
	"halfvec_l2_squared_distance": true, "halfvec_negative_inner_product": true,
	"sparsevec_l2_squared_distance": true, "sparsevec_negative_inner_product": true,
}

// adminFuncs escape the policy: server file access, large objects, other
// connections, signals to other backends, configuration reloads,
// replication slots and backups, statistics resets.
var adminFuncs = map[string]bool{
	"pg_read_file": true, "pg_read_binary_file": true, "pg_ls_dir": true,
	"pg_ls_logdir": true, "pg_ls_waldir": true, "pg_ls_tmpdir": true,
	"pg_ls_archive_statusdir": true, "pg_ls_logicalsnapdir": true,
	"pg_ls_logicalmapdir": true, "pg_ls_replslotdir": true, "pg_stat_file": true,
	"pg_file_write": true, "pg_file_rename": true, "pg_file_unlink": true,
	"pg_file_sync": true, "pg_logdir_ls": true, "pg_current_logfile": true,
	"loread": true, "lowrite": true,
	"pg_terminate_backend": true, "pg_cancel_backend": true, "pg_reload_conf": true,
	"pg_rotate_logfile": true, "pg_promote": true, "pg_backup_start": true,
	"pg_backup_stop": true, "pg_start_backup": true, "pg_stop_backup": true,
	"pg_switch_wal": true, "pg_create_restore_point": true,
	"pg_create_physical_replication_slot": true, "pg_create_logical_replication_slot": true,
	"pg_drop_replication_slot": true, "pg_copy_physical_replication_slot": true,
	"pg_copy_logical_replication_slot": true, "pg_replication_slot_advance": true,
	"pg_logical_slot_get_changes": true, "pg_logical_slot_peek_changes": true,
	"pg_logical_slot_get_binary_changes": true, "pg_logical_slot_peek_binary_changes": true,
	"pg_logical_emit_message": true, "pg_wal_replay_pause": true, "pg_wal_replay_resume": true,
	"pg_log_backend_memory_contexts": true, "pg_import_system_collations": true,
	"pg_stat_statements_reset": true, "pg_background_launch": true,
	"pg_background_result": true, "pg_background_detach": true,
}

// adminFuncPrefixes are families of admin functions.
var adminFuncPrefixes = []string{"lo_", "dblink", "pg_replication_origin_", "pg_stat_reset"}

// adminSchemas are extension schemas whose functions run or schedule SQL.
var adminSchemas = map[string]bool{"cron": true, "dblink": true}

// sqlFuncs execute the SQL text given as their first argument.
var sqlFuncs = map[string]bool{
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"ts_stat": true,
}

// updateFuncs change data without an UPDATE statement.
var updateFuncs = map[string]bool{"setval": true}

// funcClass returns the action a function call forces on its statement
// (Admin, Update) or "" when it is an ordinary function.
func funcClass(schema, name string) Action {
	if adminFuncs[name] || adminSchemas[schema] {
		return ActionAdmin
	}
	for _, p := range adminFuncPrefixes {
		if strings.HasPrefix(name, p) {
			return ActionAdmin
		}
	}
	if updateFuncs[name] {
		return ActionUpdate
	}
	return ""
}

// ordinarySettings may be SET, RESET and SHOWn by anyone as a session
// action: planner and client settings that change neither identity nor
// what the server logs, loads or replicates.
var ordinarySettings = map[string]bool{
	"application_name": true, "search_path": true, "statement_timeout": true,
	"lock_timeout": true, "idle_in_transaction_session_timeout": true,
	"idle_session_timeout": true, "transaction_timeout": true, "timezone": true,
	"datestyle": true, "intervalstyle": true, "client_encoding": true,
	"client_min_messages": true, "extra_float_digits": true, "bytea_output": true,
	"standard_conforming_strings": true, "work_mem": true, "maintenance_work_mem": true,
	"hash_mem_multiplier": true, "temp_buffers": true, "random_page_cost": true,
	"seq_page_cost": true, "cpu_tuple_cost": true, "cpu_index_tuple_cost": true,
	"cpu_operator_cost": true, "parallel_setup_cost": true, "parallel_tuple_cost": true,
	"effective_cache_size": true, "effective_io_concurrency": true, "jit": true,
	"jit_above_cost": true, "jit_inline_above_cost": true, "jit_optimize_above_cost": true,
	"max_parallel_workers_per_gather": true, "max_parallel_maintenance_workers": true,
	"min_parallel_table_scan_size": true, "min_parallel_index_scan_size": true,
	"default_transaction_isolation": true, "default_transaction_read_only": true,
	"default_transaction_deferrable": true, "transaction_isolation": true,
	"transaction_read_only": true, "transaction_deferrable": true,
	"constraint_exclusion": true, "cursor_tuple_fraction": true,
	"from_collapse_limit": true, "join_collapse_limit": true, "geqo": true,
	"geqo_threshold": true, "geqo_effort": true, "geqo_pool_size": true,
	"geqo_generations": true, "geqo_selection_bias": true, "geqo_seed": true,
	"default_statistics_target": true, "plan_cache_mode": true,
	"lc_monetary": true, "lc_numeric": true, "lc_time": true, "row_security": true,
	"synchronous_commit": true, "check_function_bodies": true,
	"default_text_search_config": true, "temp_tablespaces": true,
	"default_tablespace": true, "gin_fuzzy_search_limit": true,
	"gin_pending_list_limit": true, "xmlbinary": true, "xmloption": true,
	"array_nulls": true, "backslash_quote": true, "escape_string_warning": true,
	"quote_all_identifiers": true, "timezone_abbreviations": true,
	"default_toast_compression": true, "enable_seqscan": true, "enable_indexscan": true,
	"enable_indexonlyscan": true, "enable_bitmapscan": true, "enable_tidscan": true,
	"enable_sort": true, "enable_incremental_sort": true, "enable_hashagg": true,
	"enable_material": true, "enable_memoize": true, "enable_nestloop": true,
	"enable_mergejoin": true, "enable_hashjoin": true, "enable_gathermerge": true,
	"enable_parallel_append": true, "enable_parallel_hash": true,
	"enable_partition_pruning": true, "enable_partitionwise_join": true,
	"enable_partitionwise_aggregate": true, "enable_async_append": true,
	"enable_presorted_aggregate": true, "recursive_worktable_factor": true,
	"vacuum_cost_delay": true, "vacuum_cost_limit": true, "seed": true,
	"trace_notify": false, "max_stack_depth": false,
}

// customPrefixDeny are extension setting prefixes that change what is
// audited, logged, scheduled or decrypted; other custom (dotted) settings
// such as hnsw.ef_search, ivfflat.probes, pgwarden.reason or app.tenant
// are ordinary.
var customPrefixDeny = map[string]bool{
	"pgaudit": true, "auto_explain": true, "pg_stat_statements": true,
	"pgsodium": true, "anon": true, "cron": true, "pglogical": true,
	"pg_cron": true, "plpgsql_check": true, "pgwarden_internal": true,
}

// settingIsOrdinary reports whether SET/RESET of the (lower-cased)
// setting name is a session action. Everything else — role,
// session_authorization, session_replication_role, log_*, *_preload_libraries,
// unknown core names — is admin: fail closed.
func settingIsOrdinary(name string) bool {
	if ordinarySettings[name] {
		return true
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		return !customPrefixDeny[name[:i]]
	}
	return false
}

// StartupParam reports whether a client may start a session with setting
// name (any case, as PostgreSQL matches it) at value. Startup parameters
// never meet the statement policy, so they get the SET policy: allowed
// exactly when SET name = value would be a session action for anyone —
// an ordinary setting at a value that keeps the server lexing SQL as
// pg_query does. reason says why not, without the value.
func StartupParam(name, value string) (reason string, ok bool) {
	n := strings.ToLower(name)
	if !settingIsOrdinary(n) {
		return n + " is not an ordinary session setting (changing it is admin)", false
	}
	if r, ok := parsesafe.Check(n, value); !ok {
		return r, false
	}
	return "", true
}
