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
//! - Ranking is Okapi BM25 (Lucene's idf) over the user's live memories
//!   that pass the filters, computed from `content_tsv`: ts_rank_cd and
//!   ts_rank, which have no inverse document frequency, rank worse.
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

/// Hybrid retrieval in one statement, filters numbered as in
/// `memories.rs` ($1 user, $2 now, $3..$6 filters), then: `$7` query
/// vector (NULL: no vector branch), `$8` model of the vectors searched,
/// `$9` query text (NULL: no text branch), `$10` depth of each branch,
/// `$11` limit, `$12` offset, `$13` RRF k, `$14` BM25 k1, `$15` BM25 b,
/// `$16` fusion depth.
///
/// Text branch: `terms` holds the query's lexemes and their OR as a
/// tsquery (each lexeme quoted, so nothing in the text is tsquery syntax);
/// `hits` is every live memory matching it (GIN on `content_tsv`) with, per
/// query lexeme it contains, the lexeme's frequency (`ts_filter` of the
/// query lexemes, weighted A, keeps only them) and the memory's length in
/// lexemes; `df` counts documents per lexeme among them, which is the true
/// document frequency since every document holding a query lexeme is a
/// hit. N is the user's live memories passing the filters; the average
/// length is taken over the hits (the memories that can score).
pub(super) const RETRIEVE: &str = concat!(
    "WITH vec AS ( \
       SELECT v.id, row_number() OVER (ORDER BY v.d, v.id) AS r, 1 - v.d AS sim FROM ( \
         SELECT m.id, m.embedding <=> $7::text::vector AS d FROM memories m \
         WHERE m.user_id = $1::uuid AND $7::text IS NOT NULL AND m.embedding IS NOT NULL \
           AND m.embedding_model = $8",
    not_expired!(),
    filters!(),
    " ORDER BY d, m.id LIMIT $10::int) v), \
     terms AS ( \
       SELECT array_agg(l) AS lexemes, \
         string_agg('''' || replace(replace(l, '\\', '\\\\'), '''', '''''') || '''', ' | ')::tsquery AS q \
       FROM unnest(tsvector_to_array(to_tsvector('english', $9::text))) AS l), \
     hits AS MATERIALIZED ( \
       SELECT m.id, length(m.content_tsv)::float8 AS dl, w.lexeme, cardinality(w.positions)::float8 AS tf \
       FROM memories m CROSS JOIN terms t \
         CROSS JOIN LATERAL unnest(ts_filter(setweight(m.content_tsv, 'A', t.lexemes), '{a}')) AS w \
       WHERE m.user_id = $1::uuid AND m.content_tsv @@ t.q",
    not_expired!(),
    filters!(),
    "), \
     df AS (SELECT h.lexeme, count(*)::float8 AS df FROM hits h GROUP BY h.lexeme), \
     corpus AS ( \
       SELECT (SELECT count(*) FROM memories m WHERE m.user_id = $1::uuid",
    not_expired!(),
    filters!(),
    ")::float8 AS n, \
         (SELECT avg(x.dl) FROM (SELECT DISTINCT h.id, h.dl FROM hits h) x) AS avgdl \
       WHERE EXISTS (SELECT 1 FROM hits)), \
     fts AS ( \
       SELECT f.id, row_number() OVER (ORDER BY f.bm25 DESC, f.id) AS r FROM ( \
         SELECT h.id, sum(ln(1 + (c.n - df.df + 0.5) / (df.df + 0.5)) \
             * h.tf * ($14::float8 + 1) / (h.tf + $14::float8 * (1 - $15::float8 + $15::float8 * h.dl / c.avgdl))) AS bm25 \
         FROM hits h JOIN df ON df.lexeme = h.lexeme CROSS JOIN corpus c \
         GROUP BY h.id ORDER BY bm25 DESC, h.id LIMIT $10::int) f), \
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
    /// None skips the text branch.
    pub text: Option<&'q str>,
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
        let sql = access_stats::recording_hits(RETRIEVE);
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
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {RETRIEVE}");
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
        uses_every_parameter("RETRIEVE", RETRIEVE, 16);
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
