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

// Functions, operators and relations are classified by internal/analysis
// (the closed world: pg_proc plus its reviewed exceptions table); the
// lists below are about settings, which no catalog classifies.

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
