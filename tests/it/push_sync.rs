//! Two-way sync end to end: the platform writes `users` and `orders` (the shipped trigger
//! functions fill the outbox), the real daemon pushes to the mock RetailCRM; crashes at exact
//! points, echo, conflicts and bad rows.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::daemon::{DaemonOpts, Env, mock};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use retailcrm_sync::mock::MockHandle;

/// Installs `sql/outbox_triggers.sql` (as the README tells the platform to).
async fn install_triggers(env: &Env) {
    let sql = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/outbox_triggers.sql"
    ))
    .unwrap();
    let mut conn = env.db.conn().await;
    conn.batch_execute(&sql)
        .await
        .expect("install the outbox triggers");
}

async fn pending(env: &Env) -> i64 {
    env.count("SELECT count(*) AS n FROM retailcrm_outbox WHERE state = 'pending'")
        .await
}

async fn wait_drained(env: &Env, limit: Duration) {
    let started = Instant::now();
    while pending(env).await > 0 {
        assert!(
            started.elapsed() < limit,
            "{} outbox rows still pending after {limit:?}; log:\n{}",
            pending(env).await,
            env.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(diesel::QueryableByName, Debug, Clone, PartialEq)]
struct UserRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    phone: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    first_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    retailcrm_customer_id: Option<i64>,
}

async fn users(env: &Env) -> Vec<UserRow> {
    let mut conn = env.db.conn().await;
    diesel::sql_query(
        "SELECT id, email, phone, first_name, last_name, retailcrm_customer_id FROM users \
         WHERE project_id = 1 AND deleted_at IS NULL ORDER BY id",
    )
    .load(&mut conn)
    .await
    .unwrap()
}

#[derive(diesel::QueryableByName, Debug, Clone, PartialEq)]
struct OrderRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    retailcrm_order_id: Option<i64>,
    #[diesel(sql_type = Text)]
    status: String,
}

async fn orders(env: &Env) -> Vec<OrderRow> {
    let mut conn = env.db.conn().await;
    diesel::sql_query(
        "SELECT id, retailcrm_order_id, status FROM orders WHERE project_id = 1 \
         AND deleted_at IS NULL ORDER BY id",
    )
    .load(&mut conn)
    .await
    .unwrap()
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The platform's side of the 200 changes: 65 e-mail edits, 65 phone edits, 30 new users, 40
/// order status changes (to statuses the mock account has codes for). Returns the new users'
/// ids and the changed orders (local id, platform status).
async fn platform_changes(env: &Env, crm: &MockHandle) -> (Vec<i64>, Vec<(i64, &'static str)>) {
    // Users standing for one customer only: a customer sharing an e-mail or phone with another
    // is linked to the other's user (README "Known limits"), and changing that user's e-mail
    // would make the next full read see two people where it saw one.
    let mut seen: HashMap<String, u32> = HashMap::new();
    for c in crm.customers_snapshot() {
        for k in c
            .email
            .iter()
            .map(|e| e.to_lowercase())
            .chain(c.phones.iter().map(|p| {
                let d = digits(&p.number);
                d[d.len().saturating_sub(10)..].to_string()
            }))
        {
            *seen.entry(k).or_default() += 1;
        }
    }
    let shared = |u: &UserRow| {
        u.email.iter().chain(u.phone.iter()).any(|k| {
            let k = if k.contains('@') {
                k.clone()
            } else {
                k[k.len().saturating_sub(10)..].to_string()
            };
            seen.get(&k).copied().unwrap_or(0) > 1
        })
    };
    let linked: Vec<UserRow> = users(env)
        .await
        .into_iter()
        .filter(|u| u.retailcrm_customer_id.is_some() && !shared(u))
        .collect();
    assert!(
        linked.len() >= 130,
        "the mock needs 130 linked users, has {}",
        linked.len()
    );
    for u in &linked[..65] {
        env.sql(&format!(
            "UPDATE users SET email = 'platform{}@loyalty.test' WHERE id = {}",
            u.id, u.id
        ))
        .await;
    }
    for u in &linked[65..130] {
        env.sql(&format!(
            "UPDATE users SET phone = '7999{:07}' WHERE id = {}",
            u.id, u.id
        ))
        .await;
    }
    let mut new_ids = Vec::new();
    for i in 0..30 {
        env.sql(&format!(
            "INSERT INTO users (project_id, email, phone, first_name, last_name) VALUES \
             (1, 'new{i}@loyalty.test', '7988{i:07}', 'New{i}', 'Member')"
        ))
        .await;
        new_ids.push(
            env.count(&format!(
                "SELECT id AS n FROM users WHERE project_id = 1 AND email = 'new{i}@loyalty.test'"
            ))
            .await,
        );
    }
    let synced: Vec<OrderRow> = orders(env)
        .await
        .into_iter()
        .filter(|o| o.retailcrm_order_id.is_some())
        .collect();
    let targets = ["DELIVERED", "PENDING", "PROCESSING"];
    let mut changed = Vec::new();
    for o in &synced {
        if changed.len() == 40 {
            break;
        }
        let to = targets[changed.len() % 3];
        if o.status == to {
            continue;
        }
        env.sql(&format!(
            "UPDATE orders SET status = '{to}' WHERE id = {}",
            o.id
        ))
        .await;
        changed.push((o.id, to));
    }
    assert_eq!(changed.len(), 40);
    (new_ids, changed)
}

/// Postgres and the mock agree on every pushed field; the new users have exactly one RetailCRM
/// customer each, found by their external id.
fn assert_agree(
    users: &[UserRow],
    orders: &[OrderRow],
    crm: &MockHandle,
    new_ids: &[i64],
    changed_orders: &[(i64, &str)],
) {
    let customers: HashMap<i64, retailcrm_sync::mock::MockCustomer> = crm
        .customers_snapshot()
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut by_ext: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for c in customers.values() {
        if let Some(e) = &c.external_id {
            by_ext.entry(e.clone()).or_default().push(c.id);
        }
    }
    let loyalty: Vec<_> = by_ext
        .keys()
        .filter(|k| k.starts_with("loyalty-1-user-"))
        .collect();
    assert_eq!(
        loyalty.len(),
        new_ids.len(),
        "one RetailCRM customer per new user: {loyalty:?}"
    );
    assert!(
        by_ext.values().all(|ids| ids.len() == 1),
        "duplicate externalId: {by_ext:?}"
    );
    for id in new_ids {
        let ext = format!("loyalty-1-user-{id}");
        let crm_id = by_ext[&ext][0];
        let u = users.iter().find(|u| u.id == *id).unwrap();
        assert_eq!(
            u.retailcrm_customer_id,
            Some(crm_id),
            "user {id} is linked to {ext}"
        );
    }
    for u in users {
        let Some(crm_id) = u.retailcrm_customer_id else {
            continue;
        };
        let Some(c) = customers.get(&crm_id) else {
            continue;
        };
        if u.email
            .as_deref()
            .is_some_and(|e| e.ends_with("@loyalty.test"))
        {
            assert_eq!(
                c.email.as_deref().map(str::to_lowercase),
                u.email,
                "user {}",
                u.id
            );
        }
        let pushed_phone = format!("7999{:07}", u.id);
        if u.phone.as_deref() == Some(pushed_phone.as_str())
            || (new_ids.contains(&u.id) && u.phone.is_some())
        {
            let theirs: Vec<String> = c.phones.iter().map(|p| digits(&p.number)).collect();
            assert_eq!(theirs, vec![u.phone.clone().unwrap()], "user {}", u.id);
        }
        if new_ids.contains(&u.id) {
            assert_eq!(c.first_name, u.first_name);
            assert_eq!(c.last_name, u.last_name);
        }
    }
    let mock_orders: HashMap<i64, String> = crm
        .orders_snapshot()
        .into_iter()
        .map(|o| (o.id, o.status))
        .collect();
    for (local_id, to) in changed_orders {
        let o = orders.iter().find(|o| o.id == *local_id).unwrap();
        assert_eq!(
            o.status, *to,
            "order {local_id} keeps the platform's status"
        );
        let want = match *to {
            "DELIVERED" => "complete",
            "PENDING" => "new",
            _ => "assembling",
        };
        let crm_id = o.retailcrm_order_id.unwrap();
        assert_eq!(
            mock_orders.get(&crm_id).map(String::as_str),
            Some(want),
            "order {local_id} ({to}) in RetailCRM"
        );
    }
}

async fn env_with_crm(orders_n: u64, customers_n: u64, seed: u64) -> (MockHandle, Env) {
    let crm = mock(orders_n, customers_n, seed).await;
    // Short leases: a job whose daemon was killed is taken over within two seconds.
    let env = Env::new(DaemonOpts {
        lease_secs: 2,
        ..DaemonOpts::default()
    })
    .await;
    env.insert_integration(1, &crm, 600).await;
    (crm, env)
}

/// 200 outbox rows reach the mock; both sides agree field by field; a pull afterwards
/// changes no platform row and writes no outbox row (no echo).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_platform_changes_reach_retailcrm_without_echo() {
    let (crm, env) = env_with_crm(120, 200, 91).await;
    let daemon = env.start().await;
    daemon.wait_synced(1).await;
    install_triggers(&env).await;
    let (new_ids, changed) = platform_changes(&env, &crm).await;
    assert_eq!(
        env.count("SELECT count(*) AS n FROM retailcrm_outbox")
            .await,
        200,
        "the triggers wrote one row per change"
    );
    wait_drained(&env, Duration::from_secs(60)).await;
    let failed = env
        .count("SELECT count(*) AS n FROM retailcrm_outbox WHERE state <> 'sent'")
        .await;
    assert_eq!(failed, 0, "every row sent; log:\n{}", env.logs());
    let (u, o) = (users(&env).await, orders(&env).await);
    assert_agree(&u, &o, &crm, &new_ids, &changed);

    // No echo: a pull, then a full re-read, change nothing and push nothing.
    for kind in ["sync_all", "resync_all"] {
        let socket = daemon.socket.clone();
        let (code, out, err) = tokio::task::spawn_blocking(move || {
            common::daemon::ctl(&socket, &["trigger", "1", kind, "--wait"])
        })
        .await
        .unwrap();
        assert_eq!(code, 0, "{kind}: {out}{err}");
        let now = users(&env).await;
        let diff: Vec<_> = now.iter().filter(|r| !u.contains(r)).collect();
        let before: Vec<_> = u.iter().filter(|r| !now.contains(r)).collect();
        assert!(
            diff.is_empty() && before.is_empty(),
            "{kind} changed users: now {diff:?}, before {before:?}"
        );
        assert_eq!(orders(&env).await, o, "{kind} changed no order");
        assert_eq!(
            env.count("SELECT count(*) AS n FROM retailcrm_outbox")
                .await,
            200,
            "{kind} enqueued no push"
        );
    }
    let status = daemon.project(1).await.unwrap();
    let _ = status; // the outbox counts arrive with the next sweep (30 s); `ctl outbox` now:
    let (code, out, _) = daemon.ctl(&["outbox", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 pending, 200 sent, 0 failed, 0 conflict"),
        "{out}"
    );
}

/// kill -9 at 20 exact points of the push (before a create, after a create before its link,
/// before and after an order edit): after restarts, exactly one RetailCRM customer per new
/// user, no duplicate externalId, every row sent, both sides agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_twenty_points_of_the_push_loses_and_duplicates_nothing() {
    let (crm, env) = env_with_crm(120, 200, 92).await;
    {
        let daemon = env.start().await;
        daemon.wait_synced(1).await;
    }
    install_triggers(&env).await;
    let (new_ids, changed) = platform_changes(&env, &crm).await;
    // Creates first (the customers' rows come before the orders'), then order edits: each
    // crash point is the 3rd passage, so every cycle gets some work done and still dies.
    let mut crashed = 0;
    for i in 0..20usize {
        if pending(&env).await == 0 {
            break;
        }
        let creates = env
            .count("SELECT count(*) AS n FROM retailcrm_outbox WHERE state = 'pending' AND entity = 'customer'")
            .await;
        let point = if creates > 0 {
            ["push_before_create:3", "push_after_create:3"][i % 2].to_string()
        } else {
            ["push_before_call:3", "push_after_call:3"][i % 2].to_string()
        };
        let mut d = env.spawn_with_env(&[("RETAILCRM_SYNC_FAILPOINT", point.as_str())]);
        let exited = d.wait_exit(Duration::from_secs(20)).await.is_some();
        if exited {
            crashed += 1;
        }
        eprintln!(
            "cycle {i} {point}: crashed {exited}, pending {}",
            pending(&env).await
        );
        d.kill9();
    }
    assert!(
        crashed >= 10,
        "the crash points were reached ({crashed} of 20)"
    );
    let daemon = env.start().await;
    wait_drained(&env, Duration::from_secs(60)).await;
    let not_sent = env
        .count("SELECT count(*) AS n FROM retailcrm_outbox WHERE state <> 'sent'")
        .await;
    assert_eq!(not_sent, 0, "every row sent; log:\n{}", env.logs());
    assert_agree(
        &users(&env).await,
        &orders(&env).await,
        &crm,
        &new_ids,
        &changed,
    );
    drop(daemon);
}

/// The same field changed in RetailCRM (by a manager) and on the platform: RetailCRM wins by
/// default and the conflict is recorded with both values; `platform_wins` pushes anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_changed_on_both_sides_ends_by_the_conflict_rule() {
    let (crm, env) = env_with_crm(20, 40, 93).await;
    let daemon = env.start().await;
    daemon.wait_synced(1).await;
    install_triggers(&env).await;
    let linked: Vec<UserRow> = users(&env)
        .await
        .into_iter()
        .filter(|u| u.retailcrm_customer_id.is_some())
        .collect();
    let (a, b) = (&linked[0], &linked[1]);
    let pause = daemon.ctl(&["pause", "1"]);
    assert_eq!(pause.0, 0, "{pause:?}");
    // The project is paused, so both changes happen before either side syncs.
    for (u, rule) in [(a, "retailcrm_wins"), (b, "platform_wins")] {
        let crm_id = u.retailcrm_customer_id.unwrap();
        assert!(crm.state().edit_customer(
            crm_id,
            Some(Some(format!("manager{}@shop.test", u.id))),
            None,
            None,
            None,
            "user"
        ));
        env.sql(&format!(
            "UPDATE users SET email = 'platform{}@loyalty.test' WHERE id = {}",
            u.id, u.id
        ))
        .await;
        let _ = rule;
    }
    // Rule per integration: first run with the default (RetailCRM wins) for `a` only.
    env.sql(&format!(
        "UPDATE retailcrm_outbox SET state = 'failed' WHERE local_id = {}",
        b.id
    ))
    .await;
    let resume = daemon.ctl(&["resume", "1"]);
    assert_eq!(resume.0, 0);
    wait_drained(&env, Duration::from_secs(30)).await;
    let state = env
        .count(&format!(
            "SELECT count(*) AS n FROM retailcrm_outbox WHERE local_id = {} AND state = 'conflict' \
             AND conflict -> 'email' ->> 'platform' = 'platform{}@loyalty.test' \
             AND conflict -> 'email' ->> 'retailcrm' = 'manager{}@shop.test'",
            a.id, a.id, a.id
        ))
        .await;
    assert_eq!(
        state,
        1,
        "the conflict is recorded with both values; log:\n{}",
        env.logs()
    );
    let mock_email = |id: i64| {
        crm.customers_snapshot()
            .into_iter()
            .find(|c| c.id == id)
            .and_then(|c| c.email)
    };
    assert_eq!(
        mock_email(a.retailcrm_customer_id.unwrap()).as_deref(),
        Some(format!("manager{}@shop.test", a.id).as_str()),
        "RetailCRM wins: the manager's e-mail stays"
    );
    // The next pull brings RetailCRM's value to the platform.
    let socket = daemon.socket.clone();
    let (code, _, _) = tokio::task::spawn_blocking(move || {
        common::daemon::ctl(&socket, &["trigger", "1", "sync_customers", "--wait"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    let after = users(&env).await;
    assert_eq!(
        after
            .iter()
            .find(|u| u.id == a.id)
            .unwrap()
            .email
            .as_deref(),
        Some(format!("manager{}@shop.test", a.id).as_str())
    );
    let (code, out, _) = daemon.ctl(&["outbox", "1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("conflict") && out.contains(&format!("manager{}@shop.test", a.id)),
        "{out}"
    );

    // platform_wins: `b`'s row, retried, is pushed over the manager's value.
    env.sql("UPDATE retailcrm_integrations SET conflict_rule = 'platform_wins', updated_at = now() WHERE project_id = 1")
        .await;
    let r = daemon.ctl(&["reload"]);
    assert_eq!(r.0, 0, "{r:?}");
    let retry = daemon.ctl(&[
        "outbox-retry",
        "1",
        "--id",
        &env.count(&format!(
            "SELECT id AS n FROM retailcrm_outbox WHERE local_id = {}",
            b.id
        ))
        .await
        .to_string(),
    ]);
    assert_eq!(retry.0, 0, "{retry:?}");
    wait_drained(&env, Duration::from_secs(30)).await;
    assert_eq!(
        mock_email(b.retailcrm_customer_id.unwrap()).as_deref(),
        Some(format!("platform{}@loyalty.test", b.id).as_str()),
        "platform_wins pushes anyway; log:\n{}",
        env.logs()
    );
}

/// Bad rows fail alone, with the reason: a status without a back-mapping, an unknown entity,
/// an invalid e-mail, a missing user; the good row next to them is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_fail_alone_with_the_reason() {
    let (crm, env) = env_with_crm(20, 20, 94).await;
    let daemon = env.start().await;
    daemon.wait_synced(1).await;
    let order = orders(&env)
        .await
        .into_iter()
        .find(|o| o.retailcrm_order_id.is_some())
        .unwrap();
    let other = orders(&env)
        .await
        .into_iter()
        .filter(|o| o.retailcrm_order_id.is_some())
        .nth(1)
        .unwrap();
    let user = users(&env)
        .await
        .into_iter()
        .find(|u| u.retailcrm_customer_id.is_some())
        .unwrap();
    env.sql(&format!(
        "INSERT INTO retailcrm_outbox (project_id, entity, local_id, fields) VALUES \
         (1, 'order', {}, '{{\"status\": \"REFUNDED\"}}'), \
         (1, 'invoice', 1, '{{}}'), \
         (1, 'customer', {}, '{{\"email\": \"not an e-mail\"}}'), \
         (1, 'customer', 987654321, '{{\"email\": \"x@y.ru\"}}'), \
         (1, 'order', {}, '{{\"status\": \"DELIVERED\"}}')",
        order.id, user.id, other.id
    ))
    .await;
    wait_drained(&env, Duration::from_secs(30)).await;
    let reason = |cond: &str| {
        let cond = cond.to_string();
        let env = &env;
        async move {
            env.count(&format!(
                "SELECT count(*) AS n FROM retailcrm_outbox WHERE state = 'failed' AND {cond}"
            ))
            .await
        }
    };
    assert_eq!(
        reason("last_error LIKE '%no RetailCRM status for platform status REFUNDED%'").await,
        1,
        "{}",
        env.logs()
    );
    assert_eq!(
        reason("entity = 'invoice' AND last_error LIKE '%unknown entity%'").await,
        1
    );
    assert_eq!(reason("last_error LIKE '%invalid e-mail%'").await, 1);
    assert_eq!(reason("last_error LIKE '%does not exist%'").await, 1);
    assert_eq!(
        env.count("SELECT count(*) AS n FROM retailcrm_outbox WHERE state = 'sent'")
            .await,
        1,
        "the good row went through"
    );
    let status = crm
        .orders_snapshot()
        .into_iter()
        .find(|o| Some(o.id) == other.retailcrm_order_id)
        .unwrap()
        .status;
    assert_eq!(status, "complete");
    // Visible to operators: ctl and the API; a retry puts them back (and they fail again).
    let (code, out, _) = daemon.ctl(&["outbox", "1"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("4 failed") && out.contains("REFUNDED"),
        "{out}"
    );
    let (code, out, _) = daemon.ctl(&["outbox-retry", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 outbox rows"), "{out}");
    wait_drained(&env, Duration::from_secs(30)).await;
    assert_eq!(
        env.count(
            "SELECT count(*) AS n FROM retailcrm_outbox WHERE state = 'failed' AND attempts = 2"
        )
        .await,
        4
    );
}

/// The pull side of the rule: a pull that runs while a platform change waits in the outbox
/// (1) applies the conflict rule when RetailCRM changed the same field, and (2) never
/// overwrites the platform's pending value when RetailCRM changed only another field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_before_the_push_keeps_pending_changes_and_detects_conflicts() {
    let (crm, env) = env_with_crm(20, 40, 95).await;
    let daemon = env.start().await;
    daemon.wait_synced(1).await;
    install_triggers(&env).await;
    let linked: Vec<UserRow> = users(&env)
        .await
        .into_iter()
        .filter(|u| u.retailcrm_customer_id.is_some())
        .collect();
    let (a, b) = (linked[0].clone(), linked[1].clone());
    assert_eq!(daemon.ctl(&["pause", "1"]).0, 0);
    // RetailCRM: a's e-mail and b's last name change (a manager).
    assert!(crm.state().edit_customer(
        a.retailcrm_customer_id.unwrap(),
        Some(Some(format!("manager{}@shop.test", a.id))),
        None,
        None,
        None,
        "user"
    ));
    assert!(crm.state().edit_customer(
        b.retailcrm_customer_id.unwrap(),
        None,
        None,
        None,
        Some(Some("Managerova".to_string())),
        "user"
    ));
    // The pull is queued first, then the platform changes both e-mails (their pushes queue
    // behind it).
    let trig = daemon.ctl(&["trigger", "1", "sync_customers"]);
    assert_eq!(trig.0, 0, "{trig:?}");
    for u in [&a, &b] {
        env.sql(&format!(
            "UPDATE users SET email = 'platform{}@loyalty.test' WHERE id = {}",
            u.id, u.id
        ))
        .await;
    }
    assert_eq!(daemon.ctl(&["resume", "1"]).0, 0);
    wait_drained(&env, Duration::from_secs(30)).await;
    let email_of = |rows: &[UserRow], id: i64| {
        rows.iter()
            .find(|u| u.id == id)
            .and_then(|u| u.email.clone())
    };
    let mock_email = |id: i64| {
        crm.customers_snapshot()
            .into_iter()
            .find(|c| c.id == id)
            .and_then(|c| c.email)
    };
    let now = users(&env).await;
    // (1) a: RetailCRM wins; the pull recorded the conflict and wrote the manager's value.
    assert_eq!(
        email_of(&now, a.id),
        Some(format!("manager{}@shop.test", a.id)),
        "log:\n{}",
        env.logs()
    );
    assert_eq!(
        mock_email(a.retailcrm_customer_id.unwrap()),
        Some(format!("manager{}@shop.test", a.id))
    );
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) AS n FROM retailcrm_outbox WHERE local_id = {} AND state = 'conflict' \
             AND conflict -> 'email' ->> 'platform' = 'platform{}@loyalty.test'",
            a.id, a.id
        ))
        .await,
        1
    );
    // (2) b: the pull re-read the customer (its last name changed) but kept the pending
    // e-mail, which the push then sent.
    assert_eq!(
        email_of(&now, b.id),
        Some(format!("platform{}@loyalty.test", b.id))
    );
    assert_eq!(
        mock_email(b.retailcrm_customer_id.unwrap()),
        Some(format!("platform{}@loyalty.test", b.id))
    );
    assert_eq!(
        now.iter()
            .find(|u| u.id == b.id)
            .unwrap()
            .last_name
            .as_deref(),
        Some("Managerova"),
        "the other field came from RetailCRM"
    );
}
