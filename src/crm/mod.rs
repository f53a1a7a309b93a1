//! RetailCRM API v5 client: HTTP plumbing, pacing and retries ([`client`]), wire types
//! ([`types`]), tolerant decoding helpers ([`decode`]), errors and their classes ([`error`]) and
//! the token bucket ([`ratelimit`]).
//!
//! Facts about the real API it relies on are in `retailcrm-api.md`; the mock in
//! [`crate::mock`] implements the same document so the two can be tested against each other.

pub mod client;
pub mod decode;
pub mod error;
pub mod ratelimit;
pub mod types;

pub use client::{
    ALLOWED_LIMITS, ClientOptions, CrmClient, DEFAULT_TIMEZONE, MAX_IDS_PER_CALL,
    parse_customers_history, parse_customers_page, parse_error_body, parse_orders_history,
    parse_orders_page, parse_statuses,
};
pub use decode::{Decoded, PoisonItem, parse_crm_datetime};
pub use error::{CrmError, ErrorClass};
pub use types::{
    AccountSettings, ConnectionReport, Credentials, Customer, CustomerHistoryRecord, HasHistoryId,
    HistoryApiKey, HistoryEntityRef, HistoryPage, Order, OrderCustomer, OrderHistoryRecord, Page,
    Pagination, Payment, Phone, Site, Status, StatusGroup,
};
