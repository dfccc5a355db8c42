//! The retrieve statement: hybrid search over one user's memories (nearest
//! vectors ∪ BM25-ranked full-text matches, fused by reciprocal rank) in one
//! SQL statement, and its EXPLAIN for the quality harness.
//!
//! Why it looks like this (numbers in BENCHMARKS.md, "Retrieval quality"):
//! - The text branch ORs the query's meaningful words. A question shares
//!   few words with the memory that answers it, so `websearch_to_tsquery`'s
//!   AND matched nothing for 738 of SciFact's 809 judged queries.
//! - Words are the `english` configuration's lexemes: Snowball stems, the
//!   English stop-word list dropped (the stored `content_tsv` uses the same
//!   configuration, so query and memory lexemes meet).
//! - Ranking is Okapi BM25 (Lucene's idf), computed from `content_tsv`:
//!   ts_rank_cd and ts_rank, which have no inverse document frequency, rank
//!   worse. Its cost is bounded by the question, not by the user's
//!   memories: corpus statistics come from the user's recent memories and
//!   candidates from the rarest lexemes' postings ([`TEXT_IDF_SAMPLE`],
//!   [`TEXT_ROWS_PER_TERM`], [`TEXT_MAX_TERMS`]).
//! - Paging is stable: the fused order is total (score, best rank, vector
//!   rank, id), and each branch ranks one of two depths (see
//!   [`branch_depth`]) whose rankings agree on every page either serves,
//!   so pages are slices of one ranking: never a repeat or a gap.

use super::access_stats;
use super::memories::{
    Filters, MEMORY_COLUMN_COUNT, Memories, MemoryRow, bad_row, filter_params, opt_text, s,
    user_scope,
};
use crate::ports::PortError;

/// Reciprocal-rank fusion: score = Σ 1/(RRF_K + rank) over the branches
/// that rank a memory within FUSION_DEPTH. Chosen on the development data
/// with `bench/quality/tune_fusion.py` (grid k ∈ 1..100 × depth ∈ 10..100,
/// table in BENCHMARKS.md): k = 5, depth 100 is within 0.003 of the best
/// SciFact nDCG@10 and LoCoMo recall@10 of the grid, and beats both
/// baselines on both. The customary k = 60 lets a memory that both branches
/// rank mediocre outrank one that a branch ranks first: LoCoMo recall@10
/// fell from 0.669 to 0.569.
pub const RRF_K: u32 = 5;
pub const FUSION_DEPTH: usize = 100;
/// Rows each branch ranks for a page past the first FUSION_DEPTH rows:
/// enough for every page within the API's limits (max offset 1000 + max
/// page 100). Rows past FUSION_DEPTH in both branches score 0 and follow
/// in order of their best rank.
pub const CANDIDATES: usize = 1100;

/// Rows each branch ranks to serve rows `offset..offset + limit`:
/// FUSION_DEPTH when the page lies within the first FUSION_DEPTH rows
/// (nearly every request), CANDIDATES otherwise. Both depths order those
/// first rows alike: every row that scores is within FUSION_DEPTH of some
/// branch, so both depths give it the same score and best rank, and it
/// precedes every row that scores 0. Exactly so where a branch ranks
/// exactly; the approximate index's deeper scan may find a closer row the
/// shallow one missed, as a repeated search may. The shallow depth is what
/// makes a large user's search fast: measured with 27,000 of one user's
/// memories, HNSW took 35 ms for 100 rows and 70-130 ms for 1,100
/// (BENCHMARKS.md, "Vector search at scale").
pub fn branch_depth(offset: usize, limit: usize) -> usize {
    if offset.saturating_add(limit) <= FUSION_DEPTH {
        FUSION_DEPTH
    } else {
        CANDIDATES
    }
}

/// Okapi BM25 term-frequency saturation and length normalisation.
pub const BM25_K1: f64 = 1.2;
pub const BM25_B: f64 = 0.75;

/// Rows of the user's most recent live memories that the text branch's
/// document frequencies and average length are estimated over (all of
/// them for a user with fewer). A user's corpus statistics barely move
/// with its size, while counting them exactly means reading every row that
/// shares a word with the question: 34,536 rows and 1.3 s for one question
/// at 100,000 memories. Chosen on the development data (BENCHMARKS.md, "The
/// text branch at scale"): SciFact nDCG@10 0.6949 against exact BM25's
/// 0.6941; 500 rows lost 0.007, 2,000 gained nothing.
pub const TEXT_IDF_SAMPLE: usize = 1000;
/// Memories the text branch takes per query lexeme: every match of a rare
/// lexeme, an arbitrary share of a common one's (whose low weight rarely
/// lifts a memory into the top ranks alone). It bounds a question's cost
/// by its words, not by the user's memories. On the development data 100
/// lost 0.004 SciFact nDCG@10 and 500 gained nothing over 200.
pub const TEXT_ROWS_PER_TERM: usize = 200;
/// Lexemes of a question that find candidates, rarest first; every lexeme
/// still counts in each candidate's score. On the development data 6 lost
/// 0.002 LoCoMo recall@10 and 12 gained nothing over 8.
pub const TEXT_MAX_TERMS: usize = 8;

/// Users with at most this many memories are searched exactly. HNSW
/// covers every user's rows and applies the user's condition after the
/// scan: for a small user among many that is a walk past thousands of
/// others' rows, and the order it finds is approximate. The smoke run of
/// the quality harness (150 SciFact documents in a test database of about
/// 3,600 memories) scored vector-mode nDCG@10 0.655 and 0.765 in two runs
/// against exact cosine's 0.888; the index's top 10 for a memory's own
/// vector shared 7.4 rows with the exact top 10. Exact, it scores 0.888.
/// An exact scan costs up to about 12 µs a row on the 2-core bench machine
/// (bench-load's heavy user of 9,000 memories: 109 ms for the whole
/// statement, where HNSW took 46 ms the same day), so the bound keeps it
/// near HNSW's cost; a user this large is also a
/// larger share of the rows HNSW walks, where its filtered scan does well.
pub const EXACT_SEARCH_MAX_MEMORIES: usize = 2_000;

/// Stands for the query vector's dimension in [`RETRIEVE`]: a type
/// modifier and the partial indexes' predicate must be literals, so each
/// dimension gets its own statement text ([`retrieve_sql`]).
const DIM: &str = "@DIM@";

/// [`RETRIEVE`] for vectors of `dim` dimensions.
fn retrieve_sql(dim: usize) -> String {
    RETRIEVE.replace(DIM, &dim.to_string())
}

/// Hybrid retrieval in one statement, filters numbered as in
/// `memories.rs` ($1 user, $2 now, $3..$6 filters), then: `$7` query
/// vector (NULL: no vector branch), `$8` model of the vectors searched,
/// `$9` query text (NULL: no text branch), `$10` depth of each branch,
/// `$11` limit, `$12` offset, `$13` RRF k, `$14` BM25 k1, `$15` BM25 b,
/// `$16` fusion depth, `$17` [`TEXT_IDF_SAMPLE`], `$18`
/// [`TEXT_ROWS_PER_TERM`], `$19` [`TEXT_MAX_TERMS`], `$20`
/// [`EXACT_SEARCH_MAX_MEMORIES`].
///
/// Vector branch: the user's vectors of the query's dimension and model,
/// nearest first. Exactly for a user of at most `$20` memories (`scope`
/// counts no further; `+ 0` keeps the planner off the index, which cannot
/// order that expression), through the HNSW index's iterative scan for a
/// larger one: of the two arms of `UNION ALL` only the one whose `scope`
/// condition holds runs. `embedding` holds vectors of any dimension; migration
/// 0010 indexes each known model's dimension apart (HNSW over the
/// expression `embedding::vector(N)`, partial on `vector_dims(embedding) =
/// N`), and the branch repeats both expressions so the planner can use
/// that index.
///
/// Text branch: `terms` holds the query's lexemes, each as a one-lexeme
/// tsquery (quoted, so nothing in the text is tsquery syntax). `sample` is
/// the user's most recent live memories (index `memories_user_created`),
/// each reduced to the query's lexemes (`ts_filter` of the lexemes
/// weighted A keeps only them) after the LIMIT: where the planner sorts
/// a user's rows instead of walking the index, computing it before the
/// sort cost it for every row (85 of 128 ms for a user of 9,000
/// memories, bench/load/plans). BM25's N, document frequencies and average
/// length (at least 1: recent memories may all be stop words) come from
/// it, over the user's memories whatever the request's filters, as a
/// search engine's inverse document frequency is. `cand` takes, for each
/// of the rarest lexemes, up to `$18` live memories that hold it and pass
/// the filters (GIN on `content_tsv`), with their frequencies of every
/// query lexeme; `fts` ranks them by BM25. Neither depends on the depth
/// `$10`, so both depths rank alike.
pub(super) const RETRIEVE: &str = concat!(
    "WITH scope AS ( \
       SELECT count(*) <= $20::int AS small \
       FROM (SELECT 1 FROM memories m WHERE m.user_id = $1::uuid LIMIT $20::int + 1) c), \
     vec AS ( \
       SELECT v.id, row_number() OVER (ORDER BY v.d, v.id) AS r, 1 - v.d AS sim FROM (( \
         SELECT m.id, (m.embedding::vector(@DIM@) <=> $7::text::vector(@DIM@)) + 0 AS d \
         FROM memories m \
         WHERE m.user_id = $1::uuid AND $7::text IS NOT NULL AND (SELECT small FROM scope) \
           AND vector_dims(m.embedding) = @DIM@ AND m.embedding_model = $8",
    not_expired!(),
    filters!(),
    " ORDER BY d, m.id LIMIT $10::int) UNION ALL ( \
         SELECT m.id, m.embedding::vector(@DIM@) <=> $7::text::vector(@DIM@) AS d \
         FROM memories m \
         WHERE m.user_id = $1::uuid AND $7::text IS NOT NULL AND NOT (SELECT small FROM scope) \
           AND vector_dims(m.embedding) = @DIM@ AND m.embedding_model = $8",
    not_expired!(),
    filters!(),
    " ORDER BY d, m.id LIMIT $10::int)) v), \
     terms AS ( \
       SELECT l AS lexeme, \
         ('''' || replace(replace(l, '\\', '\\\\'), '''', '''''') || '''')::tsquery AS q \
       FROM unnest(tsvector_to_array(to_tsvector('english', $9::text))) AS l), \
     lexemes AS (SELECT array_agg(t.lexeme) AS a FROM terms t), \
     sample AS MATERIALIZED ( \
       SELECT length(r.content_tsv)::float8 AS dl, \
         ts_filter(setweight(r.content_tsv, 'A', (SELECT a FROM lexemes)), '{a}') AS tsv \
       FROM (SELECT m.content_tsv FROM memories m \
         WHERE m.user_id = $1::uuid AND EXISTS (SELECT 1 FROM terms)",
    not_expired!(),
    " ORDER BY m.created_at DESC, m.id DESC LIMIT $17::int) r), \
     corpus AS (SELECT count(*)::float8 AS n, greatest(avg(s.dl), 1) AS avgdl FROM sample s), \
     sample_df AS ( \
       SELECT w.lexeme, count(*)::float8 AS df \
       FROM sample s CROSS JOIN LATERAL unnest(s.tsv) AS w GROUP BY w.lexeme), \
     idf AS ( \
       SELECT t.lexeme, t.q, \
         ln(1 + (c.n - coalesce(d.df, 0) + 0.5) / (coalesce(d.df, 0) + 0.5)) AS idf, \
         row_number() OVER (ORDER BY coalesce(d.df, 0), t.lexeme) AS rarity \
       FROM terms t CROSS JOIN corpus c LEFT JOIN sample_df d ON d.lexeme = t.lexeme), \
     cand AS MATERIALIZED ( \
       SELECT DISTINCT ON (x.id) x.id, x.dl, x.tsv FROM idf i CROSS JOIN LATERAL ( \
         SELECT m.id, length(m.content_tsv)::float8 AS dl, \
           ts_filter(setweight(m.content_tsv, 'A', (SELECT a FROM lexemes)), '{a}') AS tsv \
         FROM memories m WHERE m.user_id = $1::uuid AND m.content_tsv @@ i.q",
    not_expired!(),
    filters!(),
    " LIMIT $18::int) x \
       WHERE i.rarity <= $19::int), \
     fts AS ( \
       SELECT f.id, row_number() OVER (ORDER BY f.bm25 DESC, f.id) AS r FROM ( \
         SELECT c.id, sum(i.idf * cardinality(w.positions) * ($14::float8 + 1) \
             / (cardinality(w.positions) + $14::float8 * (1 - $15::float8 + $15::float8 * c.dl / k.avgdl))) AS bm25 \
         FROM cand c CROSS JOIN LATERAL unnest(c.tsv) AS w \
           JOIN idf i ON i.lexeme = w.lexeme CROSS JOIN corpus k \
         GROUP BY c.id ORDER BY bm25 DESC, c.id LIMIT $10::int) f), \
     fused AS ( \
       SELECT u.id, sum(CASE WHEN u.r <= $16::int THEN 1.0::float8 / ($13::int + u.r) ELSE 0 END) AS score, \
         min(u.r) AS best, min(u.vr) AS vr, min(u.tr) AS tr, max(u.sim) AS sim \
       FROM (SELECT id, r, r AS vr, NULL::bigint AS tr, sim FROM vec \
             UNION ALL SELECT id, r, NULL::bigint, r, NULL::float8 FROM fts) u \
       GROUP BY u.id), \
     page AS ( \
       SELECT * FROM fused ORDER BY score DESC, best, vr NULLS LAST, id LIMIT $11::int OFFSET $12::int) \
     SELECT ",
    memory_columns!(),
    ", f.score::text, f.vr::text, f.tr::text, f.sim::text \
     FROM page f JOIN memories m ON m.id = f.id \
     ORDER BY f.score DESC, f.best, f.vr NULLS LAST, m.id"
);

/// One retrieval hit.
#[derive(Debug, Clone)]
pub struct Hit {
    pub memory: MemoryRow,
    pub score: f64,
    pub vector_rank: Option<i64>,
    pub text_rank: Option<i64>,
    pub similarity: Option<f64>,
}

/// What to search with: the query's vector and/or its text.
#[derive(Debug, Clone, Default)]
pub struct Query<'q> {
    /// pgvector text of the query's embedding; None skips the vector branch.
    pub vector: Option<String>,
    /// The model whose vectors are searched.
    pub model: &'q str,
    /// The dimension of that model's vectors (and of `vector`).
    pub dim: usize,
    /// None skips the text branch.
    pub text: Option<&'q str>,
    /// How much of the user's memories the text branch reads.
    pub budget: TextBudget,
}

/// The text branch's bounds. The API always uses the default; the quality
/// harness (`bench/quality/tune_text_branch.py`) varies them, and with
/// every bound past the user's memories the branch is exact BM25.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextBudget {
    pub idf_sample: usize,
    pub rows_per_term: usize,
    pub max_terms: usize,
}

impl Default for TextBudget {
    fn default() -> Self {
        TextBudget {
            idf_sample: TEXT_IDF_SAMPLE,
            rows_per_term: TEXT_ROWS_PER_TERM,
            max_terms: TEXT_MAX_TERMS,
        }
    }
}

fn params(
    user: &str,
    now: &str,
    f: &Filters,
    q: &Query<'_>,
    limit: usize,
    offset: usize,
) -> Vec<Option<String>> {
    let mut p = filter_params(user, now, f);
    p.extend([
        q.vector.clone(),
        s(q.model),
        q.text.map(str::to_string),
        s(branch_depth(offset, limit).to_string()),
        s(limit.to_string()),
        s(offset.to_string()),
        s(RRF_K.to_string()),
        s(BM25_K1.to_string()),
        s(BM25_B.to_string()),
        s(FUSION_DEPTH.to_string()),
        s(q.budget.idf_sample.to_string()),
        s(q.budget.rows_per_term.to_string()),
        s(q.budget.max_terms.to_string()),
        s(EXACT_SEARCH_MAX_MEMORIES.to_string()),
    ]);
    p
}

impl Memories<'_> {
    /// Hybrid retrieval; see [`RETRIEVE`]. Rows `offset..offset + limit`
    /// of the fused ranking.
    pub async fn retrieve(
        &self,
        user: &str,
        now: &str,
        f: &Filters,
        q: &Query<'_>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<Hit>, PortError> {
        // The hits are recorded by the same statement: no extra round trip.
        let sql = access_stats::recording_hits(&retrieve_sql(q.dim));
        let rows = self
            .sql
            .query(
                &user_scope(user),
                &sql,
                &params(user, now, f, q, limit, offset),
            )
            .await?;
        rows.iter()
            .map(|r| {
                let n = MEMORY_COLUMN_COUNT;
                let num = |i: usize| -> Result<Option<f64>, PortError> {
                    opt_text(r, i)?
                        .map(|t| t.parse::<f64>().map_err(|_| bad_row("number")))
                        .transpose()
                };
                Ok(Hit {
                    memory: MemoryRow::from_row(r)?,
                    score: num(n)?.ok_or_else(|| bad_row("score"))?,
                    vector_rank: num(n + 1)?.map(|x| x as i64),
                    text_rank: num(n + 2)?.map(|x| x as i64),
                    similarity: num(n + 3)?,
                })
            })
            .collect()
    }

    /// `EXPLAIN (ANALYZE, BUFFERS)` of the same statement with the same
    /// parameters and scope (row-level security applies): the plan lines.
    pub async fn explain_retrieve(
        &self,
        user: &str,
        now: &str,
        f: &Filters,
        q: &Query<'_>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<String>, PortError> {
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", retrieve_sql(q.dim));
        let rows = self
            .sql
            .query(
                &user_scope(user),
                &sql,
                &params(user, now, f, q, limit, offset),
            )
            .await?;
        rows.iter()
            .map(|r| opt_text(r, 0)?.ok_or_else(|| bad_row("plan line")))
            .collect()
    }
}

/// Dimensions of a vector in pgvector's text form (`[0.1,0.2,…]`).
pub fn pgvector_dims(text: &str) -> usize {
    text.split(',').count()
}

/// The fused score a memory gets from its ranks in each branch (1-based).
pub fn rrf_score(ranks: &[Option<i64>]) -> f64 {
    ranks
        .iter()
        .flatten()
        .filter(|r| **r as usize <= FUSION_DEPTH)
        .map(|r| 1.0 / (f64::from(RRF_K) + *r as f64))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repositories::rows::uses_every_parameter;

    #[test]
    fn retrieve_uses_every_parameter() {
        uses_every_parameter("RETRIEVE", RETRIEVE, 20);
    }

    #[test]
    fn each_dimension_gets_its_own_literal_statement() {
        let sql = retrieve_sql(768);
        assert!(!sql.contains(DIM));
        assert!(sql.contains("m.embedding::vector(768) <=> $7::text::vector(768)"));
        assert!(sql.contains("vector_dims(m.embedding) = 768"));
        assert_eq!(pgvector_dims("[0.5,1,-2]"), 3);
    }

    #[test]
    fn depth_covers_every_page_the_api_allows() {
        let l = crate::limits::Limits::default();
        assert!(CANDIDATES >= l.max_offset + l.max_page);
        for offset in [0, 1, 50, 99, 100, l.max_offset] {
            for limit in [1, 10, l.max_page] {
                assert!(branch_depth(offset, limit) >= offset + limit);
            }
        }
    }

    #[test]
    fn pages_within_the_fusion_depth_rank_only_that_deep() {
        assert_eq!(branch_depth(0, 10), FUSION_DEPTH);
        assert_eq!(branch_depth(0, FUSION_DEPTH), FUSION_DEPTH);
        assert_eq!(branch_depth(90, 10), FUSION_DEPTH);
        assert_eq!(branch_depth(91, 10), CANDIDATES);
        assert_eq!(branch_depth(usize::MAX, 10), CANDIDATES);
    }

    #[test]
    fn rrf_score_sums_branch_contributions() {
        assert_eq!(rrf_score(&[None, None]), 0.0);
        let both = rrf_score(&[Some(1), Some(1)]);
        assert!((both - 2.0 / (f64::from(RRF_K) + 1.0)).abs() < 1e-12);
        assert!(rrf_score(&[Some(1), None]) > rrf_score(&[None, Some(2)]));
        assert_eq!(rrf_score(&[Some(FUSION_DEPTH as i64 + 1), None]), 0.0);
    }
}
