//! Behavioural risk: telemetry events per session are reduced to four
//! features, compared with the user's own baseline (earlier sessions) as
//! z-scores, and folded into a score in 0..1. A suspicious session must
//! re-assert a passkey before destructive or bulk memory actions.
//!
//! edge-api/AUTH.md ("Risk") documents the model and its constants.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::indexing_slicing
)]

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::app::Ctx;
use crate::config::RiskConfig;
use crate::errors::{ApiError, ErrorCode};
use crate::repositories::telemetry::{NewEvent, StoredEvent, Telemetry};
use crate::services::auth::Caller;
use crate::services::memories::{parse_timestamp, rfc3339};

pub const MAX_EVENTS_PER_REQUEST: usize = 500;
pub const MAX_COMMAND_BYTES: usize = 4096;
pub const MAX_SESSION_ID_BYTES: usize = 128;
/// Events may be stamped at most this far in the future (client clocks).
const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
/// A scored session needs this many events for full confidence.
const FULL_SESSION_EVENTS: f64 = 5.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryRequest {
    pub session_id: String,
    pub events: Vec<TelemetryEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryEvent {
    pub command: String,
    /// Characters per second while typing the command.
    pub typing_speed: f64,
    pub error: bool,
    /// RFC 3339.
    pub at: String,
}

fn field(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, msg)
}

/// Validates and stores a batch of events; returns how many were stored.
pub async fn record(ctx: &Ctx<'_>, user: &Uuid, req: TelemetryRequest) -> Result<u64, ApiError> {
    let sid = req.session_id.as_str();
    if sid.is_empty() || sid.len() > MAX_SESSION_ID_BYTES || sid.chars().any(|c| c.is_control()) {
        return Err(field(
            "session_id must be 1 to 128 bytes without control characters",
        ));
    }
    if req.events.is_empty() || req.events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(field(format!(
            "events must hold 1 to {MAX_EVENTS_PER_REQUEST} events"
        )));
    }
    let mut rows = Vec::with_capacity(req.events.len());
    for (i, e) in req.events.iter().enumerate() {
        if e.command.len() > MAX_COMMAND_BYTES {
            return Err(field(format!("events[{i}].command exceeds 4096 bytes")));
        }
        if !e.typing_speed.is_finite() || !(0.0..=1000.0).contains(&e.typing_speed) {
            return Err(field(format!(
                "events[{i}].typing_speed must be 0 to 1000 characters per second"
            )));
        }
        let (at_ms, at) = parse_timestamp(&e.at)
            .ok_or_else(|| field(format!("events[{i}].at must be an RFC 3339 timestamp")))?;
        if at_ms > ctx.now_ms + MAX_FUTURE_MS {
            return Err(field(format!("events[{i}].at is in the future")));
        }
        rows.push(NewEvent {
            at,
            typing_speed: e.typing_speed,
            error: e.error,
            command_length: u32::try_from(e.command.chars().count()).unwrap_or(u32::MAX),
            command_tokens: u32::try_from(e.command.split_whitespace().count()).unwrap_or(u32::MAX),
        });
    }
    Ok(Telemetry { sql: ctx.p.sql }
        .insert(&user.to_string(), sid, &rows, &rfc3339(ctx.now_ms))
        .await?)
}

/// The four features of one session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Features {
    /// Commands per minute over the session's span (at least one minute).
    pub command_velocity: f64,
    /// Mean typing speed, characters per second.
    pub typing_speed: f64,
    /// Share of commands that failed.
    pub error_rate: f64,
    /// Mean whitespace-separated tokens per command.
    pub command_complexity: f64,
}

impl Features {
    fn values(&self) -> [f64; 4] {
        [
            self.command_velocity,
            self.typing_speed,
            self.error_rate,
            self.command_complexity,
        ]
    }
}

const NAMES: [&str; 4] = [
    "command_velocity",
    "typing_speed",
    "error_rate",
    "command_complexity",
];
/// Smallest standard deviation used per feature, so a very regular
/// baseline does not turn small wobbles into huge z-scores.
const STDDEV_FLOOR: [f64; 4] = [1.0, 1.0, 0.05, 0.5];

/// Features of a non-empty set of events.
pub fn features(events: &[&StoredEvent]) -> Features {
    let n = events.len().max(1) as f64;
    let first = events.iter().map(|e| e.at_ms).min().unwrap_or(0);
    let last = events.iter().map(|e| e.at_ms).max().unwrap_or(0);
    let minutes = ((last - first) as f64 / 60_000.0).max(1.0);
    Features {
        command_velocity: events.len() as f64 / minutes,
        typing_speed: events.iter().map(|e| e.typing_speed).sum::<f64>() / n,
        error_rate: events.iter().filter(|e| e.error).count() as f64 / n,
        command_complexity: events
            .iter()
            .map(|e| f64::from(e.command_tokens))
            .sum::<f64>()
            / n,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub stddev: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The session scored (the most recent one unless asked for another).
    pub session_id: Option<String>,
    pub score: f64,
    pub confidence: f64,
    pub suspicious: bool,
    pub features: Option<Features>,
    pub baseline: Option<serde_json::Value>,
    pub z_scores: Option<serde_json::Value>,
    /// Events in the baseline (the user's other sessions).
    pub baseline_samples: usize,
    pub baseline_sessions: usize,
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Scores `session` (default: the newest) of `events` (newest first)
/// against the user's other sessions.
pub fn score(events: &[StoredEvent], session: Option<&str>, cfg: &RiskConfig) -> Assessment {
    let current = session
        .map(str::to_string)
        .or_else(|| events.first().map(|e| e.session_id.clone()));
    let mut empty = Assessment {
        session_id: current.clone(),
        score: 0.0,
        confidence: 0.0,
        suspicious: false,
        features: None,
        baseline: None,
        z_scores: None,
        baseline_samples: 0,
        baseline_sessions: 0,
    };
    let Some(current) = current else {
        return empty;
    };
    let mine: Vec<&StoredEvent> = events.iter().filter(|e| e.session_id == current).collect();
    // Earlier sessions, in first-seen order (events are newest first).
    let mut others: Vec<(&str, Vec<&StoredEvent>)> = Vec::new();
    for e in events.iter().filter(|e| e.session_id != current) {
        match others.iter_mut().find(|(s, _)| *s == e.session_id) {
            Some((_, v)) => v.push(e),
            None => others.push((&e.session_id, vec![e])),
        }
    }
    let base_events: usize = others.iter().map(|(_, v)| v.len()).sum();
    empty.baseline_samples = base_events;
    empty.baseline_sessions = others.len();
    if mine.is_empty() {
        return empty;
    }
    let f = features(&mine);
    empty.features = Some(f);
    let confidence = (base_events as f64 / cfg.min_events.max(1) as f64).min(1.0)
        * (others.len() as f64 / cfg.min_sessions.max(1) as f64).min(1.0)
        * (mine.len() as f64 / FULL_SESSION_EVENTS).min(1.0);
    empty.confidence = round(confidence);
    if base_events < cfg.min_events || others.len() < cfg.min_sessions {
        return empty;
    }
    let per_session: Vec<[f64; 4]> = others.iter().map(|(_, v)| features(v).values()).collect();
    let k = per_session.len() as f64;
    let mut baseline = serde_json::Map::new();
    let mut zs = serde_json::Map::new();
    let mut sum_sq = 0.0;
    for (i, ((name, floor), x)) in NAMES.iter().zip(STDDEV_FLOOR).zip(f.values()).enumerate() {
        let column = per_session.iter().filter_map(|v| v.get(i).copied());
        let mean = column.clone().sum::<f64>() / k;
        let var = column.map(|v| (v - mean).powi(2)).sum::<f64>() / k;
        let stddev = var.sqrt();
        let sigma = stddev.max(floor).max(0.1 * mean.abs());
        let z = (x - mean) / sigma;
        sum_sq += z * z;
        baseline.insert(
            (*name).into(),
            json!({"mean": round(mean), "stddev": round(stddev)}),
        );
        zs.insert((*name).into(), json!(round(z)));
    }
    let d2 = sum_sq / NAMES.len() as f64;
    let score = d2 / (d2 + 4.0);
    Assessment {
        score: round(score),
        suspicious: score >= cfg.suspicious_score && confidence >= cfg.min_confidence,
        baseline: Some(baseline.into()),
        z_scores: Some(zs.into()),
        ..empty
    }
}

pub async fn assess(
    ctx: &Ctx<'_>,
    user: &Uuid,
    session: Option<&str>,
) -> Result<Assessment, ApiError> {
    let events = Telemetry { sql: ctx.p.sql }
        .recent(&user.to_string(), &rfc3339(ctx.now_ms))
        .await?;
    Ok(score(&events, session, &ctx.cfg.auth.risk))
}

/// Destructive or bulk actions: when the caller's newest session looks
/// suspicious, a passkey assertion from the last few minutes is required.
pub async fn require_step_up(ctx: &Ctx<'_>, caller: &Caller) -> Result<(), ApiError> {
    let window = ctx.cfg.auth.risk.step_up_window_s;
    if caller.fresh_hwk(ctx.now_ms, window) {
        return Ok(());
    }
    let a = assess(ctx, &caller.user_id, None).await?;
    if a.suspicious {
        return Err(ApiError::new(
            ErrorCode::StepUpRequired,
            "recent activity looks unusual; confirm with your passkey, then retry",
        )
        .with_extra(json!({"risk_score": a.score})));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const CFG: RiskConfig = RiskConfig {
        min_events: 20,
        min_sessions: 3,
        suspicious_score: 0.6,
        min_confidence: 0.5,
        step_up_window_s: 300,
    };

    /// `n` events of one session, `gap_s` apart, newest first.
    fn session(
        id: &str,
        start_ms: i64,
        n: usize,
        gap_s: i64,
        speed: f64,
        errors: usize,
        tokens: u32,
    ) -> Vec<StoredEvent> {
        let mut v: Vec<StoredEvent> = (0..n)
            .map(|i| StoredEvent {
                session_id: id.into(),
                at_ms: start_ms + i as i64 * gap_s * 1000,
                typing_speed: speed + (i % 3) as f64 * 0.5,
                error: i < errors,
                command_length: tokens * 5,
                command_tokens: tokens,
            })
            .collect();
        v.reverse();
        v
    }

    fn history() -> Vec<StoredEvent> {
        let mut all = Vec::new();
        for (k, speed) in [(0, 5.0), (1, 5.5), (2, 4.8)] {
            all.extend(session(&format!("s{k}"), k * 3_600_000, 8, 15, speed, 1, 3));
        }
        all
    }

    fn newest_first(mut v: Vec<StoredEvent>) -> Vec<StoredEvent> {
        v.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
        v
    }

    #[test]
    fn features_of_a_session() {
        let s = session("a", 0, 5, 30, 4.0, 1, 2);
        let refs: Vec<&StoredEvent> = s.iter().collect();
        let f = features(&refs);
        // 5 commands over 2 minutes.
        assert!((f.command_velocity - 2.5).abs() < 1e-9);
        assert!((f.error_rate - 0.2).abs() < 1e-9);
        assert!((f.command_complexity - 2.0).abs() < 1e-9);
        assert!((f.typing_speed - 4.4).abs() < 1e-9);
    }

    #[test]
    fn no_baseline_no_suspicion() {
        let mut ev = history();
        ev.truncate(16); // two sessions only
        let mut all = session("now", 99_000_000, 10, 1, 40.0, 0, 12);
        all.extend(ev);
        let a = score(&newest_first(all), None, &CFG);
        assert_eq!(a.session_id.as_deref(), Some("now"));
        assert!(!a.suspicious);
        assert_eq!(a.score, 0.0);
        assert!(a.baseline.is_none());
        assert_eq!(a.baseline_sessions, 2);
        assert!(a.confidence < 1.0);
    }

    #[test]
    fn a_session_like_the_baseline_is_not_suspicious() {
        let mut all = history();
        all.extend(session("now", 99_000_000, 8, 15, 5.2, 1, 3));
        let a = score(&newest_first(all), None, &CFG);
        assert_eq!(a.baseline_samples, 24);
        assert_eq!(a.confidence, 1.0);
        assert!(a.score < 0.3, "{a:?}");
        assert!(!a.suspicious);
    }

    #[test]
    fn a_scripted_session_is_suspicious() {
        let mut all = history();
        // 10 commands a second apart, typed at 40 chars/s, long commands.
        all.extend(session("now", 99_000_000, 10, 1, 40.0, 0, 12));
        let a = score(&newest_first(all), None, &CFG);
        assert!(a.suspicious, "{a:?}");
        assert!(a.score > 0.9);
        let z = a.z_scores.unwrap();
        assert!(z["typing_speed"].as_f64().unwrap() > 10.0);
        // Asking for an older session scores that one instead.
        let b = score(&newest_first(history()), Some("s1"), &CFG);
        assert_eq!(b.baseline_sessions, 2);
        assert!(!b.suspicious);
    }

    #[test]
    fn too_few_current_events_lowers_confidence() {
        let mut all = history();
        all.extend(session("now", 99_000_000, 2, 1, 40.0, 0, 12));
        let a = score(&newest_first(all), None, &CFG);
        assert!(a.score > 0.6);
        assert!(a.confidence < 0.5);
        assert!(!a.suspicious);
    }
}
