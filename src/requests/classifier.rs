//! The classifier: a tree of request categories (the one writer of `request_categories`, `request_sla_targets` and
//! `request_category_versions`). Each category names its executor and team and, per priority, the working minutes
//! within which the first response and the resolution are due. Operator administrators change it; every change is a
//! compare-and-set on the category's version, keeps the new definition in `request_category_versions` and is
//! journalled (`requests.category.created`, `requests.category.updated`).

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::json;
use time::OffsetDateTime;

use super::{Executor, Priority, Team};
use crate::audit::{self, Actor, Event, Outcome};
use crate::clock;
use crate::i18n::Lang;

/// The SLA targets of one priority, in working minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub priority: Priority,
    pub first_response_minutes: i64,
    pub resolution_minutes: i64,
}

/// A category with its targets (one per priority, in [`Priority::ALL`] order).
#[derive(Debug, Clone)]
pub struct Category {
    pub id: i64,
    pub code: String,
    pub parent_id: Option<i64>,
    pub name_en: String,
    pub name_ru: String,
    pub name_kk: String,
    pub executor: Executor,
    pub team: Team,
    pub active: bool,
    pub version: i64,
    pub updated_at: String,
    pub targets: Vec<Target>,
}

impl Category {
    pub fn name(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.name_en,
            Lang::Ru => &self.name_ru,
            Lang::Kk => &self.name_kk,
        }
    }

    /// The name in the request's language.
    pub fn local_name(&self) -> &str {
        self.name(crate::i18n::current())
    }

    pub fn target(&self, priority: Priority) -> Option<Target> {
        self.targets.iter().copied().find(|t| t.priority == priority)
    }

    /// Whether it is a sub-category (shown indented under its parent).
    pub fn is_child(&self) -> bool {
        self.parent_id.is_some()
    }

    /// The definition kept with each version.
    fn definition(&self) -> serde_json::Value {
        let targets: serde_json::Map<String, serde_json::Value> = self
            .targets
            .iter()
            .map(|t| {
                (
                    t.priority.as_str().to_string(),
                    json!({"first_response_minutes": t.first_response_minutes, "resolution_minutes": t.resolution_minutes}),
                )
            })
            .collect();
        json!({
            "code": self.code, "parent_id": self.parent_id, "name_en": self.name_en, "name_ru": self.name_ru,
            "name_kk": self.name_kk, "executor": self.executor, "team": self.team, "active": self.active,
            "targets": targets,
        })
    }
}

const COLUMNS: &str = "id, code, parent_id, name_en, name_ru, name_kk, executor, team, active, version, updated_at";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Category> {
    Ok(Category {
        id: r.get("id")?,
        code: r.get("code")?,
        parent_id: r.get("parent_id")?,
        name_en: r.get("name_en")?,
        name_ru: r.get("name_ru")?,
        name_kk: r.get("name_kk")?,
        executor: r.get("executor")?,
        team: r.get("team")?,
        active: r.get("active")?,
        version: r.get("version")?,
        updated_at: r.get("updated_at")?,
        targets: Vec::new(),
    })
}

fn with_targets(conn: &Connection, mut category: Category) -> rusqlite::Result<Category> {
    let mut stmt = conn.prepare_cached(
        "SELECT priority, first_response_minutes, resolution_minutes FROM request_sla_targets WHERE category_id = ?1",
    )?;
    let mut targets = stmt
        .query_map([category.id], |r| {
            Ok(Target {
                priority: r.get("priority")?,
                first_response_minutes: r.get("first_response_minutes")?,
                resolution_minutes: r.get("resolution_minutes")?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    targets.sort_by_key(|t| Priority::ALL.iter().position(|p| *p == t.priority));
    category.targets = targets;
    Ok(category)
}

/// Every category, as a tree: each root followed by its children, by code.
pub fn categories(conn: &Connection) -> rusqlite::Result<Vec<Category>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM request_categories
         ORDER BY (SELECT p.code FROM request_categories p WHERE p.id = coalesce(request_categories.parent_id, request_categories.id)),
                  parent_id IS NOT NULL, code"
    ))?;
    let rows = stmt.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|c| with_targets(conn, c)).collect()
}

pub fn category(conn: &Connection, id: i64) -> rusqlite::Result<Option<Category>> {
    let found = conn
        .query_row(&format!("SELECT {COLUMNS} FROM request_categories WHERE id = ?1"), [id], from_row)
        .optional()?;
    found.map(|c| with_targets(conn, c)).transpose()
}

pub fn category_by_code(conn: &Connection, code: &str) -> rusqlite::Result<Option<Category>> {
    let found = conn
        .query_row(&format!("SELECT {COLUMNS} FROM request_categories WHERE code = ?1"), [code], from_row)
        .optional()?;
    found.map(|c| with_targets(conn, c)).transpose()
}

/// What an administrator sets on a category.
#[derive(Debug, Clone)]
pub struct Change {
    pub executor: Executor,
    pub team: Team,
    pub active: bool,
    pub targets: Vec<Target>,
}

impl Change {
    /// Whether the targets are usable: one per priority, positive, resolution not before the first response.
    pub fn valid(&self) -> bool {
        Priority::ALL.iter().all(|p| self.targets.iter().filter(|t| t.priority == *p).count() == 1)
            && self.targets.iter().all(|t| {
                t.first_response_minutes > 0
                    && t.resolution_minutes >= t.first_response_minutes
                    && t.resolution_minutes <= 60 * 24 * 366
            })
    }
}

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updated {
    /// The category's new version.
    Version(i64),
    /// Someone changed it since `expected_version` was read, or it does not exist.
    Conflict,
}

fn record_version(tx: &Transaction, category: &Category, actor: &Actor, now: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO request_category_versions (category_id, version, definition, changed_at, changed_by)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![category.id, category.version, category.definition().to_string(), now, actor.name],
    )?;
    Ok(())
}

fn store_targets(tx: &Transaction, id: i64, targets: &[Target]) -> rusqlite::Result<()> {
    for t in targets {
        tx.execute(
            "INSERT INTO request_sla_targets (category_id, priority, first_response_minutes, resolution_minutes)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (category_id, priority) DO UPDATE SET first_response_minutes = excluded.first_response_minutes,
                 resolution_minutes = excluded.resolution_minutes",
            params![id, t.priority, t.first_response_minutes, t.resolution_minutes],
        )?;
    }
    Ok(())
}

/// Changes a category if it is still at `expected_version`.
pub fn update(
    tx: &Transaction,
    id: i64,
    expected_version: i64,
    change: &Change,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<Updated> {
    let at = clock::rfc3339(now);
    let changed = tx.execute(
        "UPDATE request_categories SET executor = ?1, team = ?2, active = ?3, version = version + 1, updated_at = ?4
         WHERE id = ?5 AND version = ?6",
        params![change.executor, change.team, change.active, at, id, expected_version],
    )?;
    if changed == 0 {
        return Ok(Updated::Conflict);
    }
    store_targets(tx, id, &change.targets)?;
    let Some(category) = category(tx, id)? else { return Ok(Updated::Conflict) };
    record_version(tx, &category, actor, &at)?;
    audit::append(
        tx,
        &Event::new(&actor.name, "requests.category.updated", Outcome::Success)
            .at(now)
            .object(format!("request_category:{}", category.code))
            .source(&actor.source)
            .detail(json!({"version": category.version, "definition": category.definition()})),
    )?;
    Ok(Updated::Version(category.version))
}

/// A new category.
#[derive(Debug, Clone)]
pub struct NewCategory {
    pub code: String,
    pub parent_id: Option<i64>,
    pub name_en: String,
    pub name_ru: String,
    pub name_kk: String,
    pub change: Change,
}

impl NewCategory {
    /// Codes are lower-case words joined by dots and underscores, such as `incident.api`.
    pub fn valid(&self) -> bool {
        let code_ok = (1..=64).contains(&self.code.len())
            && self.code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
        let name_ok = |n: &str| (1..=200).contains(&n.chars().count());
        code_ok && name_ok(&self.name_en) && name_ok(&self.name_ru) && name_ok(&self.name_kk) && self.change.valid()
    }
}

/// Adds a category; `None` when its code is taken or its parent does not exist.
pub fn create(
    tx: &Transaction,
    new: &NewCategory,
    actor: &Actor,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<i64>> {
    if category_by_code(tx, &new.code)?.is_some() {
        return Ok(None);
    }
    if let Some(parent) = new.parent_id
        && category(tx, parent)?.is_none()
    {
        return Ok(None);
    }
    let at = clock::rfc3339(now);
    tx.execute(
        "INSERT INTO request_categories (code, parent_id, name_en, name_ru, name_kk, executor, team, active, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            new.code,
            new.parent_id,
            new.name_en,
            new.name_ru,
            new.name_kk,
            new.change.executor,
            new.change.team,
            new.change.active,
            at
        ],
    )?;
    let id = tx.last_insert_rowid();
    store_targets(tx, id, &new.change.targets)?;
    let Some(category) = category(tx, id)? else { return Ok(None) };
    record_version(tx, &category, actor, &at)?;
    audit::append(
        tx,
        &Event::new(&actor.name, "requests.category.created", Outcome::Success)
            .at(now)
            .object(format!("request_category:{}", category.code))
            .source(&actor.source)
            .detail(json!({"version": 1, "definition": category.definition()})),
    )?;
    Ok(Some(id))
}

/// The versions of a category, newest first: (version, changed at, by whom, definition JSON).
pub fn versions(conn: &Connection, id: i64) -> rusqlite::Result<Vec<(i64, String, String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT version, changed_at, changed_by, definition FROM request_category_versions WHERE category_id = ?1
         ORDER BY version DESC",
    )?;
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_seeded_classifier_names_an_executor_and_targets_for_every_category() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::migrate::migrate(&mut conn, crate::store::migrate::SCHEMA).unwrap();
        let all = categories(&conn).unwrap();
        let codes: Vec<&str> = all.iter().map(|c| c.code.as_str()).collect();
        for code in ["integration", "incident", "incident.api", "dispute", "accreditation", "billing", "security"] {
            assert!(codes.contains(&code), "{code} missing from {codes:?}");
        }
        assert_eq!(
            codes.iter().position(|c| *c == "incident.api"),
            Some(codes.iter().position(|c| *c == "incident").unwrap() + 1)
        );
        for c in &all {
            assert_eq!(c.targets.len(), 4, "{}", c.code);
            assert_eq!(versions(&conn, c.id).unwrap().len(), 1);
        }
        let incident = category_by_code(&conn, "incident.api").unwrap().unwrap();
        assert_eq!(incident.executor, Executor::Counterparty);
        let actor = Actor { name: "user:admin".into(), source: "test".into(), user_id: None };
        let mut change = Change {
            executor: Executor::Operator,
            team: Team::OperatorAdmin,
            active: true,
            targets: incident.targets.clone(),
        };
        change.targets[3].resolution_minutes = 120;
        let tx = conn.transaction().unwrap();
        assert_eq!(update(&tx, incident.id, 1, &change, &actor, clock::now()).unwrap(), Updated::Version(2));
        assert_eq!(update(&tx, incident.id, 1, &change, &actor, clock::now()).unwrap(), Updated::Conflict);
        let stored = category(&tx, incident.id).unwrap().unwrap();
        assert_eq!(
            (stored.executor, stored.version, stored.targets[3].resolution_minutes),
            (Executor::Operator, 2, 120)
        );
        assert_eq!(versions(&tx, incident.id).unwrap().len(), 2);
    }
}
