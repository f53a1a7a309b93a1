//! RetailCRM API v5 client: HTTP plumbing, pacing and retries ([`client`]), wire types
//! ([`types`]), tolerant decoding helpers ([`decode`]), errors and their classes ([`error`]) and
//! the token bucket ([`ratelimit`]).
//!
//! Facts about the real API it relies on are in `retailcrm-api.md`; the mock in
//! [`crate::mock`] implements the same document so the two can be tested against each other.
//!
//! # What we assume about the real API rather than know
//! Nothing below has been checked against a live account; each item is handled defensively.
//! - Date-times are wall-clock time in the account timezone from `/api/v5/settings`
//!   (`settings.timezone.value`); Europe/Moscow when absent or unknown (logged).
//! - `limit` 20/50/100 is accepted by lists *and* history; 250 is never sent.
//! - A wrong key answers 403 `Wrong "apiKey" value.`; we classify by `errorMsg` first, so a 200
//!   or 401 with that message is handled the same way.
//! - `Access denied.` means a missing scope or store; an HTML body (or 404/405 with
//!   `Account does not exist`) means a wrong account URL; 5xx with HTML is transient.
//! - 503 and 429 both mean "rate limited" and carry no `Retry-After`; we back off ourselves.
//! - History `id`s are strictly increasing per stream; `filter[sinceId]` is exclusive and its
//!   `totalCount` counts the records above it (used as a hint only). `page` is never sent to a
//!   history endpoint: RetailCRM refuses deep pages, so the newest id is found by a bounded
//!   search on `sinceId` ([`anchor`]).
//! - `filter[ids][]` with `limit=100` returns every live entity among up to 100 ids; deleted ids
//!   are silently absent.
//! - The default order of `/orders` and `/customers` is not documented, so nothing depends on
//!   it: a first sync reads windows of creation time ([`ListWindow`]), each whole in one
//!   request (`sync::engine::snapshot`). `createdAtFrom`/`createdAtTo` (orders) and
//!   `dateFrom`/`dateTo` (customers) are assumed to take `Y-m-d H:i:s` in the account
//!   timezone; a server that honours only the date, or ignores them, is detected from the
//!   creation times it returns and read in coarser, verified windows.
//! - History responses carry `generatedAt`, the account's clock; the anchor search keeps the
//!   last one, so the snapshot's windows can stop there (anything newer is in history).
//! - Money arrives as JSON numbers written by PHP (`1234.5`, `0`); numeric strings are accepted.
//! - Create answers 201, edit 200; any 2xx with `success: true` is success.

pub mod anchor;
pub mod client;
pub mod decode;
pub mod error;
pub mod ratelimit;
pub mod types;
pub mod wire;

pub use client::{ClientOptions, CrmClient, DEFAULT_TIMEZONE, ListWindow, parse_error_body};
pub use decode::{Decoded, PoisonItem, parse_crm_datetime};
pub use error::{CrmError, ErrorClass};
pub use types::{
    AccountSettings, ConnectionReport, Credentials, Customer, CustomerHistoryRecord, HasHistoryId,
    HistoryApiKey, HistoryEntityRef, HistoryPage, Order, OrderCustomer, OrderHistoryRecord, Page,
    Pagination, Payment, Phone, Site, Status, StatusGroup,
};
pub use wire::{
    ALLOWED_LIMITS, MAX_IDS_PER_CALL, parse_customers_history, parse_customers_page,
    parse_orders_history, parse_orders_page, parse_statuses,
};
