//! Every recorded RetailCRM response in tests/fixtures decodes with the client's decoders, and
//! random or truncated JSON never makes a decoder panic.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use proptest::prelude::*;
use retailcrm_sync::crm::{
    self, ClientOptions, CrmClient, Decoded, ErrorClass, parse_customers_history,
    parse_customers_page, parse_orders_history, parse_orders_page, parse_statuses,
};
use retailcrm_sync::secret::ApiKey;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn orders_list_fixture_decodes() {
    let page = parse_orders_page(&fixture("orders-list.json")).unwrap();
    assert_eq!(page.pagination.total_count, 1);
    assert_eq!(page.items.len(), 1);
    let Decoded::Ok(order) = &page.items[0] else {
        panic!("poison: {:?}", page.items[0])
    };
    assert_eq!(order.id, 7141);
    assert_eq!(order.number.as_deref(), Some("7141C"));
    assert_eq!(order.total_summ, BigDecimal::from(0));
    assert_eq!(order.currency.as_deref(), Some("RUB"));
    assert!(order.payments.is_empty(), "payments is {{}} in the fixture");
    let customer = order.customer.as_ref().unwrap();
    assert_eq!(customer.id, Some(4924));
    let utc = order.created_at_utc(chrono_tz::Europe::Moscow).unwrap();
    assert_eq!(utc.to_rfc3339(), "2021-02-25T06:37:48+00:00");
}

#[test]
fn customers_list_fixture_decodes() {
    let page = parse_customers_page(&fixture("customers-list.json")).unwrap();
    let Decoded::Ok(c) = &page.items[0] else {
        panic!("poison: {:?}", page.items[0])
    };
    assert_eq!(c.id, 1233);
    assert_eq!(c.external_id.as_deref(), Some("11"));
    assert!(c.custom_fields.contains_key("galkatrue"));
}

#[test]
fn orders_history_fixture_decodes() {
    let page = parse_orders_history(&fixture("orders-history.json")).unwrap();
    assert_eq!(page.items.len(), 100);
    let poison: Vec<_> = page.items.iter().filter_map(|d| d.poison()).collect();
    assert!(poison.is_empty(), "{poison:?}");
    let ids: Vec<i64> = page
        .items
        .iter()
        .filter_map(|d| d.ok())
        .map(|r| r.id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
    assert_eq!(page.max_id(), ids.last().copied());
    assert!(page.items.iter().filter_map(|d| d.ok()).any(|r| r.created));
    assert!(
        page.items
            .iter()
            .filter_map(|d| d.ok())
            .all(|r| r.order_id().is_some())
    );
    assert_eq!(page.pagination.total_page_count, 298);
    assert!(page.generated_at.is_some());
}

#[test]
fn customers_history_fixture_decodes() {
    let page = parse_customers_history(&fixture("customers-history.json")).unwrap();
    assert_eq!(page.items.len(), 100);
    let ok: Vec<_> = page.items.iter().filter_map(|d| d.ok()).collect();
    assert_eq!(
        ok.len(),
        100,
        "{:?}",
        page.items.iter().find_map(|d| d.poison())
    );
    assert_eq!(ok[0].id, 2692, "first record after sinceId=2691");
    assert_eq!(ok[0].customer_id(), Some(978));
    assert!(ok.iter().any(|r| r.deleted || r.created));
}

#[test]
fn statuses_fixture_decodes() {
    let statuses = parse_statuses(&fixture("reference-statuses.json")).unwrap();
    assert_eq!(statuses["new"].group.as_deref(), Some("new"));
    assert_eq!(statuses["complete"].group.as_deref(), Some("complete"));
    assert!(statuses.len() >= 20);
}

#[test]
fn error_fixture_is_classified() {
    let client = CrmClient::new(
        "https://x.retailcrm.ru",
        ApiKey::new("k-1234567890"),
        ClientOptions::default(),
    )
    .unwrap();
    let err = crm::parse_error_body(
        &client,
        "/api/v5/orders/create",
        405,
        &fixture("error-method-not-allowed.json"),
    );
    assert!(err.to_string().contains("Method Not Allowed"), "{err}");
    assert_eq!(err.class(), ErrorClass::Permanent);
    let err = crm::parse_error_body(
        &client,
        "/api/v5/orders",
        403,
        br#"{"success":false,"errorMsg":"Wrong \"apiKey\" value."}"#,
    );
    assert!(matches!(err, crm::CrmError::InvalidKey { .. }));
    let err = crm::parse_error_body(
        &client,
        "/api/v5/orders",
        400,
        br#"{"success":false,"errorMsg":"Errors in the entity format","errors":["a","b"]}"#,
    );
    assert!(err.to_string().contains("a; b"), "{err}");
    let err = crm::parse_error_body(&client, "/api/v5/orders", 400,
        br#"{"success":false,"errorMsg":"Errors in the entity format","errors":{"customer":"Set one"}}"#);
    assert!(err.to_string().contains("customer: Set one"), "{err}");
    let err = crm::parse_error_body(
        &client,
        "/api/v5/orders",
        405,
        b"<html><body>nginx</body></html>",
    );
    assert!(matches!(err, crm::CrmError::AccountNotFound { .. }));
}

#[test]
fn quirks_decode() {
    let body = br#"{"success":true,"pagination":{"limit":20,"totalCount":3,"currentPage":1,"totalPageCount":1},
      "orders":[
        {"id":1,"totalSumm":1234.50,"payments":[],"customFields":{"a":1},"externalId":77,
         "customer":{"id":"5","phones":{"0":{"number":"89123456789"}}}},
        {"id":"2","totalSumm":"1395.16","payments":{"9":{"id":9,"amount":10.1,"status":"paid"}},"customFields":[]},
        {"id":3,"totalSumm":{"bad":true}},
        {"totalSumm":1}
      ]}"#;
    let page = parse_orders_page(body).unwrap();
    assert_eq!(page.items.len(), 4);
    let o1 = page.items[0].ok().unwrap();
    assert_eq!(o1.total_summ, BigDecimal::from_str("1234.50").unwrap());
    assert_eq!(o1.external_id.as_deref(), Some("77"));
    assert_eq!(
        o1.customer.as_ref().unwrap().phones[0].number.as_deref(),
        Some("89123456789")
    );
    let o2 = page.items[1].ok().unwrap();
    assert_eq!(o2.total_summ.to_string(), "1395.16");
    assert_eq!(
        o2.payments["9"].amount.as_ref().unwrap().to_string(),
        "10.1"
    );
    let p3 = page.items[2].poison().unwrap();
    assert_eq!(p3.id, Some(3));
    assert!(p3.reason.contains("amount"), "{}", p3.reason);
    assert_eq!(page.items[3].poison().unwrap().id, None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_orders_page(&bytes);
        let _ = parse_customers_page(&bytes);
        let _ = parse_orders_history(&bytes);
        let _ = parse_customers_history(&bytes);
        let _ = parse_statuses(&bytes);
    }

    #[test]
    fn truncated_fixtures_are_errors_not_panics(cut in 0usize..10_000, which in 0usize..5) {
        let (name, f): (&str, fn(&[u8]) -> bool) = match which {
            0 => ("orders-list.json", |b| parse_orders_page(b).is_ok()),
            1 => ("customers-list.json", |b| parse_customers_page(b).is_ok()),
            2 => ("orders-history.json", |b| parse_orders_history(b).is_ok()),
            3 => ("customers-history.json", |b| parse_customers_history(b).is_ok()),
            _ => ("reference-statuses.json", |b| parse_statuses(b).is_ok()),
        };
        let full = fixture(name);
        let cut = cut % full.len();
        // Strictly shorter than the document (minus trailing whitespace) cannot be complete.
        let trimmed_len = full.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |p| p + 1);
        prop_assume!(cut < trimmed_len);
        prop_assert!(!f(&full[..cut]), "a truncated body decoded");
    }

    #[test]
    fn mangled_json_items_never_panic(
        id in prop_oneof![Just("1".to_string()), Just("\"x\"".to_string()), Just("null".to_string()), "[1-9][0-9]{0,24}"],
        total in prop_oneof![Just("1.5".to_string()), Just("\"\"".to_string()), Just("[]".to_string()), Just("1e400".to_string()), "-?[1-9][0-9]{0,29}\\.[0-9]{1,30}"],
        payments in prop_oneof![Just("[]".to_string()), Just("{}".to_string()), Just("[1]".to_string()), Just("null".to_string()), Just("{\"1\":{\"amount\":\"x\"}}".to_string())],
    ) {
        let body = format!(r#"{{"success":true,"pagination":{{}},"orders":[{{"id":{id},"totalSumm":{total},"payments":{payments}}}]}}"#);
        let page = parse_orders_page(body.as_bytes()).unwrap();
        prop_assert_eq!(page.items.len(), 1);
    }
}

#[test]
fn history_poison_keeps_its_id_so_the_cursor_moves() {
    let body = br#"{"success":true,"generatedAt":"2026-01-01 00:00:00",
      "pagination":{"limit":20,"totalCount":3,"currentPage":1,"totalPageCount":1},
      "history":[
        {"id":10,"createdAt":"2026-01-01 10:00:00","field":"status","source":"user","order":{"id":5},"oldValue":{"code":"new"},"newValue":{"code":"complete"}},
        {"id":"11","order":"not an object"},
        {"id":12,"created":true,"source":"api","apiKey":{"current":true},"field":"id","order":{"id":6,"customFields":[]}}
      ]}"#;
    let page = parse_orders_history(body).unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.items[1].poison().unwrap().id, Some(11));
    assert_eq!(page.max_id(), Some(12));
    assert!(page.items[2].ok().unwrap().is_own_write());
    assert_eq!(page.items[0].ok().unwrap().new_value["code"], "complete");
}
