//! Phones through the whole engine (mock RetailCRM -> Postgres): a number from abroad is
//! another person than the Russian number with the same digits after the country code, and
//! numbers without a country code are read in the integration's (or the account's) country.

use crate::sync_support;

use retailcrm_sync::model::PhoneCountry;
use sync_support::{Spec, World};

/// Adds customers with these phones to the mock; returns their ids.
fn add_customers(w: &World, phones: &[&str]) -> Vec<i64> {
    let mut st = w.mock.state();
    phones
        .iter()
        .map(|p| {
            st.api_create_customer(&serde_json::json!({
                "firstName": "Test", "phones": [{"number": p}],
            }))
            .expect("mock creates the customer")
        })
        .collect()
}

/// The stored phone of the user linked to each customer.
async fn phones_of(w: &World, ids: &[i64]) -> Vec<Option<String>> {
    let users = w.users().await;
    ids.iter()
        .map(|id| {
            let u = users
                .iter()
                .find(|u| u.cid == Some(*id))
                .unwrap_or_else(|| panic!("customer {id} has a user of its own: {users:?}"));
            u.phone.clone()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_from_abroad_is_not_merged_with_a_russian_one() {
    let w = World::new(Spec {
        orders: 0,
        customers: 5,
        seed: 41,
        ..Spec::default()
    })
    .await;
    let ids = add_customers(&w, &["+84 912 345 678", "+7 491 234-56-78"]);
    w.sync_all().await;
    assert_eq!(
        phones_of(&w, &ids).await,
        vec![Some("84912345678".into()), Some("74912345678".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrations_country_reads_local_numbers_without_asking_the_account() {
    let mut w = World::new(Spec {
        orders: 0,
        customers: 5,
        seed: 42,
        ..Spec::default()
    })
    .await;
    w.integration.default_phone_country = Some("KZ".parse::<PhoneCountry>().unwrap());
    let ids = add_customers(&w, &["8 701 123 45 67", "+7 912 345-67-89 доб. 5"]);
    let before = w.routes();
    w.sync_all().await;
    let diff = sync_support::route_diff(&before, &w.routes());
    assert!(!diff.contains_key("/api/v5/reference/sites"), "{diff:?}");
    assert_eq!(
        phones_of(&w, &ids).await,
        vec![Some("77011234567".into()), Some("79123456789".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_only_key_without_reference_read_reads_phones_as_russian() {
    let mut w = World::new(Spec {
        orders: 0,
        customers: 5,
        seed: 43,
        ..Spec::default()
    })
    .await;
    w.integration.sync_orders = false;
    w.mock.set_scopes(&["customer_read"]);
    let ids = add_customers(&w, &["8 (495) 123-45-67", "+84 912 345 678"]);
    w.sync_all().await;
    assert_eq!(
        phones_of(&w, &ids).await,
        vec![Some("74951234567".into()), Some("84912345678".into())]
    );
}
