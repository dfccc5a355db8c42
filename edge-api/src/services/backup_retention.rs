//! Backup retention: after a backup verified, keeps the newest backup of
//! each of the last `keep_daily` days and `keep_weekly` ISO weeks that have
//! one, and deletes the other finished backups older than the newest
//! verified one (failed runs' partial objects included). The manifest goes
//! first, so a half-deleted backup is never listed as whole; each deletion
//! is recorded in `backup_runs` only once all its objects are gone, so an
//! interrupted deletion is finished by the next run.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use chrono::{Datelike, NaiveDate};

use crate::app::Ctx;
use crate::config::BackupConfig;
use crate::repositories::backups::{Backups, Retained};
use crate::services::memories::rfc3339;
use sdap::backup as layout;

/// The UTC day a backup started, from its id (`YYYYMMDDT…`).
fn day_of(backup_id: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(backup_id.get(..8)?, "%Y%m%d").ok()
}

/// The ids of the backups to delete, given the finished runs whose objects
/// still exist, newest first. Only runs older than the newest verified
/// backup are ever chosen; of the verified ones, the newest of each of the
/// first `keep_daily` days and `keep_weekly` ISO weeks are kept, as is any
/// whose id does not name a day.
pub fn select_expired(runs: &[Retained], keep_daily: usize, keep_weekly: usize) -> Vec<String> {
    let Some(newest) = runs.iter().position(|r| r.done) else {
        return Vec::new();
    };
    let mut days = HashSet::new();
    let mut weeks = HashSet::new();
    let mut expired = Vec::new();
    for (i, run) in runs.iter().enumerate().skip(newest) {
        if !run.done {
            if i > newest {
                expired.push(run.backup_id.clone());
            }
            continue;
        }
        let Some(day) = day_of(&run.backup_id) else {
            continue;
        };
        let week = (day.iso_week().year(), day.iso_week().week());
        // Newest first: the first backup met of a day (week) is its newest.
        let new_day = !days.contains(&day) && days.len() < keep_daily;
        let new_week = !weeks.contains(&week) && weeks.len() < keep_weekly;
        if new_day {
            days.insert(day);
        }
        if new_week {
            weeks.insert(week);
        }
        if !(new_day || new_week) {
            expired.push(run.backup_id.clone());
        }
    }
    expired
}

/// Deletes what [`select_expired`] chooses and records it; returns the ids
/// deleted. A failure stops the pass (logged); the next one retries.
pub async fn apply(ctx: &Ctx<'_>, cfg: &BackupConfig) -> Vec<String> {
    let repo = Backups { sql: ctx.p.sql };
    let runs = match repo.retained().await {
        Ok(r) => r,
        Err(e) => {
            ctx.log(&format!("backup retention: listing runs failed: {e}"));
            return Vec::new();
        }
    };
    let mut deleted = Vec::new();
    for id in select_expired(&runs, cfg.keep_daily, cfg.keep_weekly) {
        match delete_backup(ctx, &id).await {
            Ok(objects) => {
                let now = rfc3339(ctx.p.clock.now_millis());
                if let Err(e) = repo.mark_deleted(&id, &now, objects).await {
                    ctx.log(&format!("backup retention: recording {id} failed: {e}"));
                    break;
                }
                ctx.log(&format!(
                    "backup retention: deleted {id} ({objects} objects)"
                ));
                deleted.push(id);
            }
            Err(e) => {
                ctx.log(&format!("backup retention: deleting {id} failed: {e}"));
                break;
            }
        }
    }
    deleted
}

/// Removes every object of backup `id`, manifest first; returns how many.
async fn delete_backup(ctx: &Ctx<'_>, id: &str) -> Result<usize, String> {
    // The prefix must name exactly one backup's folder, never the root.
    if !layout::valid_backup_id(id) {
        return Err("not a backup id".into());
    }
    let prefix = layout::object_key(id, "");
    let mut keys = ctx.p.blob.list(&prefix).await.map_err(|e| e.to_string())?;
    let first = [
        layout::object_key(id, layout::MANIFEST),
        layout::object_key(id, layout::SIGNATURE),
    ];
    keys.sort_by_key(|k| first.iter().position(|f| f == k).unwrap_or(first.len()));
    for key in &keys {
        ctx.p.blob.delete(key).await.map_err(|e| e.to_string())?;
    }
    Ok(keys.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn runs(list: &[(&str, bool)]) -> Vec<Retained> {
        list.iter()
            .map(|(id, done)| Retained {
                backup_id: id.to_string(),
                done: *done,
            })
            .collect()
    }

    /// `n` daily backups at 03:00, newest first, starting at `newest`.
    fn daily(newest: NaiveDate, n: i64) -> Vec<Retained> {
        (0..n)
            .map(|d| Retained {
                backup_id: format!(
                    "{}T030000Z",
                    (newest - chrono::Duration::days(d)).format("%Y%m%d")
                ),
                done: true,
            })
            .collect()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn nothing_is_deleted_without_a_verified_backup() {
        let r = runs(&[("20261130T030000Z", false), ("20261129T030000Z", false)]);
        assert!(select_expired(&r, 1, 0).is_empty());
        assert!(select_expired(&[], 1, 0).is_empty());
    }

    #[test]
    fn keeps_the_last_n_days() {
        // 30 days ending Monday 2026-11-30.
        let r = daily(date(2026, 11, 30), 30);
        let expired = select_expired(&r, 7, 0);
        assert_eq!(expired.len(), 23);
        assert_eq!(expired[0], "20261123T030000Z");
        assert_eq!(select_expired(&r, 30, 0), Vec::<String>::new());
        assert_eq!(select_expired(&r, 1, 0).len(), 29);
    }

    #[test]
    fn weekly_keeps_the_newest_of_each_week_beyond_the_days() {
        // 2026-11-30 is a Monday: the days 11-30 … 11-24 span ISO weeks 49
        // and 48; weeks 47 and 46 keep their newest (Sundays 11-22, 11-15).
        let r = daily(date(2026, 11, 30), 30);
        let expired = select_expired(&r, 7, 4);
        let kept: Vec<&str> = r
            .iter()
            .map(|x| x.backup_id.as_str())
            .filter(|id| !expired.iter().any(|e| e == id))
            .collect();
        assert_eq!(
            kept,
            vec![
                "20261130T030000Z",
                "20261129T030000Z",
                "20261128T030000Z",
                "20261127T030000Z",
                "20261126T030000Z",
                "20261125T030000Z",
                "20261124T030000Z",
                "20261122T030000Z",
                "20261115T030000Z",
            ]
        );
        // Weeks alone: the newest of the last two weeks.
        let expired = select_expired(&r, 1, 2);
        assert_eq!(expired.len(), 28);
        assert!(!expired.contains(&"20261129T030000Z".to_string()));
    }

    #[test]
    fn several_a_day_keep_only_the_newest_of_the_day() {
        let r = runs(&[
            ("20261130T150000Z", true),
            ("20261130T030000Z", true),
            ("20261129T030000Z", true),
        ]);
        assert_eq!(select_expired(&r, 2, 0), vec!["20261130T030000Z"]);
    }

    #[test]
    fn failed_runs_go_only_once_a_newer_backup_verified() {
        let r = runs(&[
            ("20261130T030000Z", false),
            ("20261129T030000Z", true),
            ("20261128T030000Z", false),
            ("20261127T030000Z", true),
        ]);
        assert_eq!(select_expired(&r, 7, 4), vec!["20261128T030000Z"]);
    }

    #[test]
    fn ids_without_a_day_are_kept() {
        let r = runs(&[
            ("20261130T030000Z", true),
            ("weird-id", true),
            ("20261101T030000Z", true),
        ]);
        assert_eq!(select_expired(&r, 1, 0), vec!["20261101T030000Z"]);
    }
}
