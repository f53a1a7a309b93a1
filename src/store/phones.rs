//! Re-normalising stored phones (`users.phone`) with the current rules, for
//! `retailcrm-sync phones renormalize`: a dry run by default, which reports per project what
//! would change, and an `apply` that writes the changes.
//!
//! The raw input is gone; what the stored digits can tell is decided by
//! [`model::renormalize_stored`](crate::model::renormalize_stored). A change that would give a
//! user the phone another user of the project has (or would get) is a collision: it is
//! reported with every user id involved and left unchanged, never merged. Each project runs in
//! one transaction under the project's users lock, so a sync of the project waits for it.

use std::collections::{BTreeMap, HashMap};

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{Store, StoreError, lock_users, op};
use crate::model::{PhoneCountry, renormalize_stored};

/// One stored phone that the current rules read differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneChange {
    /// `users.id`.
    pub user_id: i64,
    /// The phone as stored.
    pub old: String,
    /// The phone under the current rules.
    pub new: String,
}

/// Users of one project who would share a phone after the changes; their rows stay unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneCollision {
    /// The phone they would share.
    pub phone: String,
    /// Every user that holds it or would get it, ascending.
    pub user_ids: Vec<i64>,
}

/// Where a project's phone country came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountrySource {
    /// The integration's `default_phone_country`.
    Integration,
    /// None set (or no integration): RU. The account's country is not asked.
    Default,
}

/// What re-normalising one project's phones found (and, with `apply`, wrote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPhones {
    /// Loyalty project id.
    pub project_id: i64,
    /// Country in which numbers without a country code were read.
    pub country: PhoneCountry,
    /// Where `country` came from.
    pub country_source: CountrySource,
    /// Users with a stored phone.
    pub checked: u64,
    /// Stored phones without any digit, left as they are.
    pub unreadable: u64,
    /// Phones that change (written when `applied`), by user id.
    pub changes: Vec<PhoneChange>,
    /// Changes left out because users would share a phone.
    pub collisions: Vec<PhoneCollision>,
    /// Whether `changes` were written.
    pub applied: bool,
}

#[derive(QueryableByName)]
struct ProjectRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    default_phone_country: Option<String>,
}

#[derive(QueryableByName)]
struct PhoneRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    phone: String,
}

impl Store {
    /// Re-normalises the stored phones of one project (`Some`) or of every project with users,
    /// writing the changes only when `apply`. `IntegrationNotFound` is never returned: a
    /// project without an integration is read in RU. `Invalid` when `project_id` names a
    /// project that does not exist.
    pub async fn renormalize_phones(
        &self,
        project_id: Option<i64>,
        apply: bool,
    ) -> Result<Vec<ProjectPhones>, StoreError> {
        let mut conn = self.conn().await?;
        let projects: Vec<ProjectRow> = diesel::sql_query(
            "SELECT p.id, i.default_phone_country FROM projects p \
             LEFT JOIN retailcrm_integrations i ON i.project_id = p.id \
             WHERE ($1::bigint IS NULL OR p.id = $1) \
             AND ($1::bigint IS NOT NULL OR EXISTS (SELECT 1 FROM users u WHERE u.project_id = p.id)) \
             ORDER BY p.id",
        )
        .bind::<Nullable<BigInt>, _>(project_id)
        .load(&mut conn)
        .await
        .map_err(op("list projects for phones"))?;
        if let Some(id) = project_id
            && projects.is_empty()
        {
            return Err(StoreError::Invalid(format!(
                "project {id} does not exist; list projects with `retailcrm-sync integration list`"
            )));
        }
        let mut out = Vec::with_capacity(projects.len());
        for p in projects {
            let (country, country_source) = match p
                .default_phone_country
                .as_deref()
                .and_then(|c| c.parse().ok())
            {
                Some(c) => (c, CountrySource::Integration),
                None => (PhoneCountry::RU, CountrySource::Default),
            };
            let result = conn
                .transaction(async |c| {
                    renormalize_project(c, p.id, country, country_source, apply).await
                })
                .await?;
            out.push(result);
        }
        Ok(out)
    }
}

async fn renormalize_project(
    conn: &mut AsyncPgConnection,
    project_id: i64,
    country: PhoneCountry,
    country_source: CountrySource,
    apply: bool,
) -> Result<ProjectPhones, StoreError> {
    lock_users(conn, project_id).await?;
    let rows: Vec<PhoneRow> = diesel::sql_query(
        "SELECT id, phone FROM users WHERE project_id = $1 AND phone IS NOT NULL ORDER BY id",
    )
    .bind::<BigInt, _>(project_id)
    .load(conn)
    .await
    .map_err(op("read phones"))?;
    let stored: Vec<(i64, String)> = rows.into_iter().map(|r| (r.id, r.phone)).collect();
    let plan = plan(&stored, country);
    let mut result = ProjectPhones {
        project_id,
        country,
        country_source,
        checked: stored.len() as u64,
        unreadable: plan.unreadable,
        changes: plan.changes,
        collisions: plan.collisions,
        applied: false,
    };
    if apply && !result.changes.is_empty() {
        let ids: Vec<i64> = result.changes.iter().map(|c| c.user_id).collect();
        let phones: Vec<&str> = result.changes.iter().map(|c| c.new.as_str()).collect();
        diesel::sql_query(
            "UPDATE users SET phone = c.phone, updated_at = now() \
             FROM unnest($2::bigint[], $3::text[]) AS c(id, phone) \
             WHERE users.project_id = $1 AND users.id = c.id",
        )
        .bind::<BigInt, _>(project_id)
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Array<Text>, _>(phones)
        .execute(conn)
        .await
        .map_err(op("write phones"))?;
        result.applied = true;
    }
    Ok(result)
}

/// Changes, collisions and unreadable values of one project.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    changes: Vec<PhoneChange>,
    collisions: Vec<PhoneCollision>,
    unreadable: u64,
}

/// Decides what changes, without I/O. A change is dropped when, after all remaining changes,
/// its user would share the phone with another user (repeated until no change is dropped, so
/// dropping one change never creates a new shared phone unnoticed). Users who already share a
/// phone and do not change are not a collision of this run.
fn plan(stored: &[(i64, String)], country: PhoneCountry) -> Plan {
    let mut out = Plan::default();
    let mut changes: BTreeMap<i64, (String, String)> = BTreeMap::new();
    for (id, phone) in stored {
        match renormalize_stored(phone, country) {
            None => out.unreadable += 1,
            Some(new) if new != *phone => {
                changes.insert(*id, (phone.clone(), new));
            }
            Some(_) => {}
        }
    }
    let mut collided: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    loop {
        let mut holders: HashMap<&str, Vec<i64>> = HashMap::new();
        for (id, phone) in stored {
            let now = changes
                .get(id)
                .map_or(phone.as_str(), |(_, new)| new.as_str());
            holders.entry(now).or_default().push(*id);
        }
        let mut dropped = Vec::new();
        for (phone, ids) in holders {
            if ids.len() > 1 && ids.iter().any(|id| changes.contains_key(id)) {
                let entry = collided.entry(phone.to_string()).or_default();
                entry.extend(ids.iter().copied());
                dropped.extend(ids.into_iter().filter(|id| changes.contains_key(id)));
            }
        }
        if dropped.is_empty() {
            break;
        }
        for id in dropped {
            changes.remove(&id);
        }
    }
    out.changes = changes
        .into_iter()
        .map(|(user_id, (old, new))| PhoneChange { user_id, old, new })
        .collect();
    out.collisions = collided
        .into_iter()
        .map(|(phone, mut user_ids)| {
            user_ids.sort_unstable();
            user_ids.dedup();
            PhoneCollision { phone, user_ids }
        })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(list: &[(i64, &str)]) -> Vec<(i64, String)> {
        list.iter().map(|(id, p)| (*id, p.to_string())).collect()
    }

    #[test]
    fn changes_that_would_share_a_phone_are_reported_and_left_out() {
        let stored = rows(&[
            (1, "89123456789123"), // -> 79123456789, held by user 2
            (2, "79123456789"),
            (3, "79001112233444"), // -> 79001112233, also user 4's new value
            (4, "+7 900 111-22-33"),
            (5, "3432123456"), // -> 73432123456, free
            (6, "нет"),
            (7, "74912345678"), // unchanged
        ]);
        let p = plan(&stored, PhoneCountry::RU);
        assert_eq!(
            p.changes,
            vec![PhoneChange {
                user_id: 5,
                old: "3432123456".into(),
                new: "73432123456".into()
            }]
        );
        assert_eq!(
            p.collisions,
            vec![
                PhoneCollision {
                    phone: "79001112233".into(),
                    user_ids: vec![3, 4]
                },
                PhoneCollision {
                    phone: "79123456789".into(),
                    user_ids: vec![1, 2]
                },
            ]
        );
        assert_eq!(p.unreadable, 1);
    }

    #[test]
    fn users_already_sharing_a_phone_are_not_this_runs_collision() {
        let stored = rows(&[(1, "79123456789"), (2, "79123456789")]);
        assert_eq!(plan(&stored, PhoneCountry::RU), Plan::default());
    }
}
