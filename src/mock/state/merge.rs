//! Customer merges (RetailCRM's "combine"): the merged-away customer leaves the account with a
//! `deleted` record that carries `combinedTo`, and its orders move to the customer it went into
//! (one `customer` or `contact` field record per order), as the live API reports them.

use std::sync::Arc;

use serde_json::json;

use super::{HistKind, MockState};

impl MockState {
    /// Merges customer `from` into customer `into` (`source` is usually `combine`). False when
    /// either does not exist or they are the same.
    pub fn merge_customer(&mut self, from: i64, into: i64, source: &'static str) -> bool {
        if from == into || !self.customers.contains_key(&into) {
            return false;
        }
        let Some(gone) = self.remove_customer(from) else {
            return false;
        };
        let target = self
            .customers
            .get(&into)
            .map(|c| Self::customer_ref(c))
            .unwrap_or_else(|| Self::customer_ref(&gone));
        self.relink_orders(from, into, source);
        let at = self.change_time();
        self.push_customer_hist(
            source,
            at,
            Self::customer_ref(&gone),
            HistKind::Combined { into: target },
        );
        true
    }

    /// Points every order of customer `from` (as customer or contact) at `into`.
    fn relink_orders(&mut self, from: i64, into: i64, source: &'static str) {
        let linked: Vec<i64> = self
            .orders
            .values()
            .filter(|o| o.customer_id == Some(from) || o.contact_id == Some(from))
            .map(|o| o.id)
            .collect();
        let site = self.site.clone();
        for id in linked {
            let Some(current) = self.orders.get(&id).cloned() else {
                continue;
            };
            let mut next = (*current).clone();
            let field = if next.customer_id == Some(from) {
                next.customer_id = Some(into);
                "customer"
            } else {
                next.contact_id = Some(into);
                "contact"
            };
            let entity = Self::order_ref(&next);
            self.orders.insert(id, Arc::new(next));
            let at = self.change_time();
            self.push_order_hist(
                source,
                at,
                entity,
                HistKind::Field {
                    field: field.into(),
                    old: json!({"id": from, "site": site}),
                    new: json!({"id": into, "site": site}),
                },
            );
        }
    }
}
