//! BERT WordPiece tokenizer, reading a Hugging Face `tokenizer.json`, with ids identical to `tokenizers`.
//!
//! Hand-written instead of depending on the `tokenizers` crate: it is small,
//! builds for wasm32-wasip1 without regex engines, and lets us stop early on
//! huge inputs. Parity with Python `tokenizers` (same tokenizer.json,
//! truncation 256, no padding) is checked by `tests/tokenizer_golden.rs`.
//!
//! The pipeline mirrors `tokenizers` step by step:
//! 1. special ("added") tokens are matched on the raw text, leftmost-longest,
//!    and emit their id directly (they are not normalised);
//! 2. `BertNormalizer` on each remaining piece: drop NUL, U+FFFD and control
//!    characters, map whitespace to ' ', pad CJK ideographs with spaces, NFD
//!    and drop non-spacing marks (accent stripping), lower-case per char;
//!    then added tokens marked `normalized` (all-mpnet-base-v2's `<unk>`)
//!    are matched on the normalised piece, the same way;
//! 3. `BertPreTokenizer`: split on whitespace, isolate punctuation;
//! 4. WordPiece: greedy longest match with `##` continuations; a word with no
//!    full cover, or longer than `max_input_chars_per_word`, becomes [UNK];
//! 5. truncate to `max_tokens - 2` and wrap in the post-processor's first and
//!    last token: [CLS] ... [SEP] for BERT (all-MiniLM-L6-v2), <s> ... </s>
//!    for MPNet and RoBERTa.
//!
//! An added token's `lstrip`/`rstrip` (absorb the whitespace beside it) do
//! not change ids here: whitespace never becomes a token.

use std::collections::HashMap;

use serde::Deserialize;
use unicode_categories::UnicodeCategories;
use unicode_normalization_alignments::UnicodeNormalization;

use crate::Error;

/// Token ids and attention mask of one text, [CLS] and [SEP] included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    /// All ones: texts are never padded here (batching pads later).
    pub attention_mask: Vec<u32>,
}

/// A WordPiece tokenizer built from a `tokenizer.json`.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    vocab: HashMap<String, u32>,
    /// Special tokens matched verbatim in the input, longest first.
    added: Vec<(String, u32)>,
    /// Added tokens matched after normalisation (content normalised), longest first.
    added_normalized: Vec<(String, u32)>,
    unk_id: u32,
    cls_id: u32,
    sep_id: u32,
    prefix: String,
    max_input_chars_per_word: usize,
    normalizer: BertNormalizer,
    max_tokens: usize,
}

#[derive(Deserialize)]
struct TokenizerJson {
    model: WordPieceJson,
    normalizer: Option<BertNormalizer>,
    #[serde(default)]
    added_tokens: Vec<AddedTokenJson>,
    post_processor: Option<PostProcessorJson>,
}

/// The post-processors that wrap a single text in one token each side.
#[derive(Deserialize)]
#[serde(tag = "type")]
enum PostProcessorJson {
    BertProcessing {
        cls: (String, u32),
        sep: (String, u32),
    },
    RobertaProcessing {
        cls: (String, u32),
        sep: (String, u32),
    },
    TemplateProcessing {
        single: Vec<TemplatePieceJson>,
        special_tokens: HashMap<String, TemplateSpecialJson>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
enum TemplatePieceJson {
    SpecialToken { id: String },
    Sequence(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct TemplateSpecialJson {
    ids: Vec<u32>,
}

impl PostProcessorJson {
    /// Ids of the tokens before and after a single text.
    fn wrapping_ids(&self) -> Result<(u32, u32), String> {
        match self {
            Self::BertProcessing { cls, sep } | Self::RobertaProcessing { cls, sep } => {
                Ok((cls.1, sep.1))
            }
            Self::TemplateProcessing {
                single,
                special_tokens,
            } => {
                let id_of = |name: &str| match special_tokens.get(name).map(|t| t.ids.as_slice()) {
                    Some([id]) => Ok(*id),
                    _ => Err(format!("template token {name} is not one id")),
                };
                match single.as_slice() {
                    [
                        TemplatePieceJson::SpecialToken { id: first },
                        TemplatePieceJson::Sequence(_),
                        TemplatePieceJson::SpecialToken { id: last },
                    ] => Ok((id_of(first)?, id_of(last)?)),
                    _ => Err("template is not <special> $A <special>".into()),
                }
            }
            Self::Other => Err("unsupported post_processor".into()),
        }
    }
}

#[derive(Deserialize)]
struct WordPieceJson {
    #[serde(rename = "type")]
    kind: String,
    vocab: HashMap<String, u32>,
    unk_token: String,
    continuing_subword_prefix: String,
    max_input_chars_per_word: usize,
}

#[derive(Deserialize)]
struct AddedTokenJson {
    id: u32,
    content: String,
    #[serde(default)]
    normalized: bool,
    #[serde(default)]
    single_word: bool,
}

#[derive(Deserialize, Debug, Clone, Copy)]
struct BertNormalizer {
    #[serde(rename = "type")]
    #[serde(default = "bert_normalizer")]
    kind: NormalizerKind,
    clean_text: bool,
    handle_chinese_chars: bool,
    strip_accents: Option<bool>,
    lowercase: bool,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
enum NormalizerKind {
    BertNormalizer,
    #[serde(other)]
    Other,
}

fn bert_normalizer() -> NormalizerKind {
    NormalizerKind::BertNormalizer
}

impl Tokenizer {
    /// Parses `tokenizer.json`; texts are truncated to `max_tokens` ids
    /// ([CLS] and [SEP] included).
    pub fn from_json(json: &[u8], max_tokens: usize) -> Result<Self, Error> {
        let bad = |msg: String| Error::Tokenizer(msg);
        let parsed: TokenizerJson =
            serde_json::from_slice(json).map_err(|e| bad(format!("tokenizer.json: {e}")))?;
        if parsed.model.kind != "WordPiece" {
            return Err(bad(format!(
                "model type {} is not WordPiece",
                parsed.model.kind
            )));
        }
        let normalizer = parsed
            .normalizer
            .ok_or_else(|| bad("tokenizer.json has no normalizer".into()))?;
        if normalizer.kind != NormalizerKind::BertNormalizer {
            return Err(bad("normalizer is not BertNormalizer".into()));
        }
        // The options below change matching in ways this tokenizer does not
        // implement; refuse them rather than silently diverge from Python.
        if let Some(t) = parsed.added_tokens.iter().find(|t| t.single_word) {
            return Err(bad(format!(
                "added token {} uses unsupported options",
                t.content
            )));
        }
        if max_tokens < 2 {
            return Err(bad("max_tokens must leave room for [CLS] and [SEP]".into()));
        }
        let vocab = parsed.model.vocab;
        let id_of = |tok: &str| {
            vocab
                .get(tok)
                .copied()
                .ok_or_else(|| bad(format!("{tok} is not in the vocabulary")))
        };
        let unk_id = id_of(&parsed.model.unk_token)?;
        let (cls_id, sep_id) = parsed
            .post_processor
            .ok_or_else(|| bad("tokenizer.json has no post_processor".into()))?
            .wrapping_ids()
            .map_err(bad)?;
        let mut tokenizer = Self {
            vocab,
            added: Vec::new(),
            added_normalized: Vec::new(),
            unk_id,
            cls_id,
            sep_id,
            prefix: parsed.model.continuing_subword_prefix,
            max_input_chars_per_word: parsed.model.max_input_chars_per_word,
            normalizer,
            max_tokens,
        };
        for t in parsed.added_tokens {
            if t.normalized {
                let content = tokenizer.normalize(&t.content);
                tokenizer.added_normalized.push((content, t.id));
            } else {
                tokenizer.added.push((t.content, t.id));
            }
        }
        // Longest first, so that the first match at a position is the
        // leftmost-longest one `tokenizers` picks; empty contents never match.
        for list in [&mut tokenizer.added, &mut tokenizer.added_normalized] {
            list.retain(|t| !t.0.is_empty());
            list.sort_by_key(|t| std::cmp::Reverse(t.0.len()));
        }
        Ok(tokenizer)
    }

    /// Truncation length in ids, [CLS] and [SEP] included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenises one text. Never fails: unknown words become [UNK].
    pub fn encode(&self, text: &str) -> Encoding {
        let budget = self.max_tokens - 2;
        let mut ids = Vec::with_capacity(budget.min(text.len() + 2) + 2);
        ids.push(self.cls_id);
        // Truncation keeps the first `budget` ids, so once they exist the
        // rest of a (possibly huge) text cannot change the result.
        split_on_tokens(text, &self.added, &mut ids, budget + 1, |piece, ids| {
            self.encode_plain(piece, ids, budget + 1)
        });
        ids.truncate(budget + 1);
        ids.push(self.sep_id);
        let attention_mask = vec![1; ids.len()];
        Encoding {
            ids,
            attention_mask,
        }
    }

    /// Normalises, pre-tokenises and WordPiece-encodes text without special
    /// tokens, appending ids until `ids` holds `limit`.
    fn encode_plain(&self, text: &str, ids: &mut Vec<u32>, limit: usize) {
        if text.is_empty() || ids.len() >= limit {
            return;
        }
        let normalized = self.normalize(text);
        split_on_tokens(
            &normalized,
            &self.added_normalized,
            ids,
            limit,
            |piece, ids| self.pretokenize_wordpiece(piece, ids, limit),
        );
    }

    /// `BertPreTokenizer` and WordPiece over normalised text, appending ids
    /// until `ids` holds `limit`.
    fn pretokenize_wordpiece(&self, normalized: &str, ids: &mut Vec<u32>, limit: usize) {
        let mut word = String::new();
        for c in normalized.chars() {
            if ids.len() >= limit {
                return;
            }
            if c.is_whitespace() {
                self.wordpiece(&word, ids);
                word.clear();
            } else if is_bert_punctuation(c) {
                self.wordpiece(&word, ids);
                word.clear();
                let mut buf = [0u8; 4];
                self.wordpiece(c.encode_utf8(&mut buf), ids);
            } else {
                word.push(c);
            }
        }
        self.wordpiece(&word, ids);
    }

    fn normalize(&self, text: &str) -> String {
        let n = &self.normalizer;
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if n.clean_text {
                if c == '\0' || c == '\u{fffd}' || is_control(c) {
                    continue;
                }
                if is_bert_whitespace(c) {
                    out.push(' ');
                    continue;
                }
            }
            if n.handle_chinese_chars && is_chinese_char(c) {
                out.push(' ');
                out.push(c);
                out.push(' ');
            } else {
                out.push(c);
            }
        }
        if n.strip_accents.unwrap_or(n.lowercase) {
            // NFD over the whole piece (not per char), as canonical
            // reordering of combining marks spans characters.
            out = out
                .nfd()
                .map(|(c, _)| c)
                .filter(|c| !c.is_mark_nonspacing())
                .collect();
        }
        if n.lowercase {
            // Per char, like `tokenizers`: no final-sigma rule of
            // `str::to_lowercase`.
            out = out.chars().flat_map(char::to_lowercase).collect();
        }
        out
    }

    /// WordPiece for one pre-tokenised word.
    fn wordpiece(&self, word: &str, ids: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if word.chars().count() > self.max_input_chars_per_word {
            ids.push(self.unk_id);
            return;
        }
        let first = ids.len();
        let mut start = 0;
        let mut candidate = String::with_capacity(word.len() + self.prefix.len());
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                let piece = &word[start..end];
                candidate.clear();
                if start > 0 {
                    candidate.push_str(&self.prefix);
                }
                candidate.push_str(piece);
                if let Some(&id) = self.vocab.get(candidate.as_str()) {
                    found = Some(id);
                    break;
                }
                end -= piece.chars().next_back().map_or(1, char::len_utf8);
            }
            match found {
                Some(id) => ids.push(id),
                None => {
                    // No cover for the whole word: it is one [UNK].
                    ids.truncate(first);
                    ids.push(self.unk_id);
                    return;
                }
            }
            start = end;
        }
    }
}

/// Splits `text` at the leftmost-longest occurrences of `tokens` (sorted
/// longest first): `piece` encodes the text between matches, a match appends
/// its id. Stops once `ids` holds `limit`.
fn split_on_tokens(
    text: &str,
    tokens: &[(String, u32)],
    ids: &mut Vec<u32>,
    limit: usize,
    mut piece: impl FnMut(&str, &mut Vec<u32>),
) {
    // Next occurrence (absolute byte offset) of each token; a token is
    // searched again only once the scan has passed it, so many tokens in a
    // long text stay linear.
    let mut next: Vec<Option<usize>> = tokens.iter().map(|(t, _)| text.find(t.as_str())).collect();
    let mut pos = 0;
    while pos < text.len() && ids.len() < limit {
        let mut best: Option<(usize, usize)> = None;
        for (i, (content, _)) in tokens.iter().enumerate() {
            if next[i].is_some_and(|at| at < pos) {
                next[i] = text
                    .get(pos..)
                    .and_then(|r| r.find(content.as_str()))
                    .map(|at| at + pos);
            }
            // Longest first: on a tie the longer stays.
            if let Some(at) = next[i]
                && best.is_none_or(|(b, _)| at < b)
            {
                best = Some((at, i));
            }
        }
        let (end, token) = match best {
            Some((at, i)) => (at, tokens.get(i)),
            None => (text.len(), None),
        };
        piece(text.get(pos..end).unwrap_or(""), ids);
        match token {
            Some((content, id)) => {
                if ids.len() < limit {
                    ids.push(*id);
                }
                pos = end + content.len();
            }
            None => pos = end,
        }
    }
}

/// `\t`, `\n`, `\r` count as whitespace, not control, as in `tokenizers`.
fn is_bert_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Categories Cc, Cf, Cn, Co, Cs (from the same old tables `tokenizers` uses,
/// so characters unassigned there are dropped here too).
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && c.is_other()
}

fn is_bert_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_punctuation()
}

/// The CJK Unified Ideographs blocks BERT splits into single characters.
fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny vocabulary exercising every rule without the real model files.
    fn tiny() -> Tokenizer {
        tiny_with(
            serde_json::json!([
                {"id": 0, "content": "[PAD]", "special": true, "normalized": false},
                {"id": 1, "content": "[UNK]", "special": true, "normalized": false},
                {"id": 2, "content": "[CLS]", "special": true, "normalized": false},
                {"id": 3, "content": "[SEP]", "special": true, "normalized": false}
            ]),
            serde_json::json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                    "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}),
        )
        .expect("tiny tokenizer")
    }

    fn tiny_with(
        added_tokens: serde_json::Value,
        post_processor: serde_json::Value,
    ) -> Result<Tokenizer, Error> {
        let vocab = [
            "[PAD]",
            "[UNK]",
            "[CLS]",
            "[SEP]",
            "hello",
            "world",
            "un",
            "##aff",
            "##able",
            "!",
            ",",
            "cafe",
            "中",
            "σοφοσ",
            "$",
            "x",
        ];
        let vocab: serde_json::Map<String, serde_json::Value> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), serde_json::Value::from(i)))
            .collect();
        let json = serde_json::json!({
            "added_tokens": added_tokens,
            "post_processor": post_processor,
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "model": {"type": "WordPiece", "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                "vocab": vocab}
        });
        Tokenizer::from_json(json.to_string().as_bytes(), 8)
    }

    #[test]
    fn wordpiece_rules() {
        let t = tiny();
        assert_eq!(t.encode("Hello, WORLD!").ids, vec![2, 4, 10, 5, 9, 3]);
        assert_eq!(t.encode("unaffable").ids, vec![2, 6, 7, 8, 3]);
        // No full cover: the whole word is one [UNK], not a partial match.
        assert_eq!(t.encode("unaffablez").ids, vec![2, 1, 3]);
        assert_eq!(t.encode("Café\u{0}\u{200b}").ids, vec![2, 11, 3]);
        assert_eq!(t.encode("x中x").ids, vec![2, 15, 12, 15, 3]);
        // Per-char lower-casing: final Σ becomes σ, not ς.
        assert_eq!(t.encode("ΣΟΦΟΣ").ids, vec![2, 13, 3]);
        assert_eq!(t.encode("$x").ids, vec![2, 14, 15, 3]);
    }

    #[test]
    fn special_tokens_truncation_and_empty() {
        let t = tiny();
        assert_eq!(t.encode("").ids, vec![2, 3]);
        assert_eq!(t.encode(" \t\n").ids, vec![2, 3]);
        assert_eq!(t.encode("hello[SEP]world").ids, vec![2, 4, 3, 5, 3]);
        assert_eq!(t.encode("[sep]").ids, vec![2, 1, 1, 1, 3]);
        assert_eq!(t.encode("[SEP][SEP]x[UNK]").ids, vec![2, 3, 3, 15, 1, 3]);
        let long = t.encode(&"hello ".repeat(1000));
        assert_eq!(long.ids.len(), 8);
        assert_eq!(long.ids, vec![2, 4, 4, 4, 4, 4, 4, 3]);
        assert_eq!(long.attention_mask, vec![1; 8]);
        assert_eq!(t.encode(&"x".repeat(101)).ids, vec![2, 1, 3]);
    }

    /// MPNet's layout: RobertaProcessing wraps in ids 0 and 3 here, `[UNK]`
    /// (an lstrip token) matches verbatim, `<X>` only after lower-casing.
    #[test]
    fn roberta_wrapping_and_normalized_added_tokens() {
        let t = tiny_with(
            serde_json::json!([
                {"id": 1, "content": "[UNK]", "special": true, "normalized": false, "lstrip": true},
                {"id": 14, "content": "<X>", "special": true, "normalized": true}
            ]),
            serde_json::json!({"type": "RobertaProcessing", "sep": ["</s>", 3], "cls": ["<s>", 0],
                "trim_offsets": true, "add_prefix_space": false}),
        )
        .expect("roberta-style tokenizer");
        assert_eq!(t.encode("hello world").ids, vec![0, 4, 5, 3]);
        // The normalised content is "<x>": both spellings match it.
        assert_eq!(t.encode("hello<X>x <x>").ids, vec![0, 4, 14, 15, 14, 3]);
        assert_eq!(t.encode("hello [UNK]world").ids, vec![0, 4, 1, 5, 3]);
        // Inside the normalised piece, truncation still holds.
        assert_eq!(
            t.encode(&"<x>".repeat(100)).ids,
            vec![0, 14, 14, 14, 14, 14, 14, 3]
        );
    }

    #[test]
    fn rejects_unsupported_files() {
        assert!(Tokenizer::from_json(b"{}", 8).is_err());
        assert!(Tokenizer::from_json(b"not json", 8).is_err());
        let added = serde_json::json!([]);
        let no_post = tiny_with(added.clone(), serde_json::Value::Null);
        assert!(no_post.is_err());
        let unknown = tiny_with(added.clone(), serde_json::json!({"type": "ByteLevel"}));
        assert!(unknown.is_err());
        let single_word = tiny_with(
            serde_json::json!([{"id": 4, "content": "hello", "single_word": true}]),
            serde_json::json!({"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]}),
        );
        assert!(single_word.is_err());
    }
}
