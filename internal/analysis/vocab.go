package analysis

// Names below are compared with identifiers as the parser returns them:
// unquoted identifiers folded to lower case, quoted ones kept as written.

// DistanceOps are pgvector's distance operators: L2, negative inner
// product, cosine, L1, Hamming and Jaccard (bit).
var DistanceOps = map[string]bool{"<->": true, "<#>": true, "<=>": true, "<+>": true, "<~>": true, "<%>": true}

// DistanceFuncs are pgvector's distance, norm and dimension functions:
// their result is a number computed server-side, not the vector they read
// (a search, and for masking not derived from a masked vector).
var DistanceFuncs = map[string]bool{
	"l2_distance": true, "cosine_distance": true, "inner_product": true,
	"l1_distance": true, "hamming_distance": true, "jaccard_distance": true,
	"negative_inner_product": true, "vector_dims": true, "vector_norm": true, "l2_norm": true,
	"vector_l2_squared_distance": true, "vector_negative_inner_product": true,
	"vector_spherical_distance": true, "halfvec_l2_squared_distance": true,
	"halfvec_negative_inner_product": true, "sparsevec_l2_squared_distance": true,
	"sparsevec_negative_inner_product": true,
}

// JSONAccessOps keep a JSON value's shape: a masked key below them stays
// maskable by key.
var JSONAccessOps = map[string]bool{"->": true, "->>": true, "#>": true, "#>>": true}

// HiddenRelations are catalog relations and views whose rows carry values
// of other relations' columns (planner statistics: most common values,
// histogram bounds) or other statements' text. Reading them reaches every
// column the role may read, masked or not.
var HiddenRelations = map[string]bool{
	"pg_stats": true, "pg_stats_ext": true, "pg_stats_ext_exprs": true,
	"pg_statistic": true, "pg_statistic_ext_data": true, "pg_stat_statements": true,
}

// AdminSchemas are extension schemas whose functions run or schedule SQL
// elsewhere (pg_cron, dblink installed into its own schema).
var AdminSchemas = map[string]bool{"cron": true, "dblink": true}
