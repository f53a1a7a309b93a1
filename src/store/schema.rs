//! diesel `table!` definitions of the tables created by `migrations/`, for typed queries
//! (the batch writes in this module use `sql_query` with array binds instead, because they are
//! `UNNEST`-based set operations the query builder cannot express). Keep in step with the SQL.

diesel::table! {
    /// Loyalty projects (owned by the platform; created if absent).
    projects (id) {
        id -> BigInt,
        name -> Nullable<Text>,
    }
}

diesel::table! {
    /// One RetailCRM integration per project.
    retailcrm_integrations (id) {
        id -> BigInt,
        project_id -> BigInt,
        api_url -> Text,
        api_key -> Text,
        is_active -> Bool,
        sync_orders -> Bool,
        sync_customers -> Bool,
        sync_interval_minutes -> Integer,
        status_mapping -> Jsonb,
        orders_created_from -> Nullable<Date>,
        default_phone_country -> Nullable<Text>,
        last_sync_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        webhook_token_sha256 -> Nullable<Text>,
        conflict_rule -> Text,
        status_back_mapping -> Jsonb,
    }
}

diesel::table! {
    /// Platform users, linked to RetailCRM customers.
    users (id) {
        id -> BigInt,
        project_id -> BigInt,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        retailcrm_customer_id -> Nullable<BigInt>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    /// Orders synced from RetailCRM.
    orders (id) {
        id -> BigInt,
        project_id -> BigInt,
        user_id -> Nullable<BigInt>,
        order_number -> Text,
        retailcrm_order_id -> Nullable<BigInt>,
        status -> Text,
        retailcrm_status -> Nullable<Text>,
        total_amount -> Numeric,
        currency -> Nullable<Text>,
        ordered_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// Cursor per project and stream.
    sync_cursors (project_id, stream) {
        project_id -> BigInt,
        stream -> Text,
        since_id -> Nullable<BigInt>,
        snapshot_page -> Nullable<Integer>,
        snapshot_total -> Nullable<BigInt>,
        version -> BigInt,
        updated_at -> Timestamptz,
        snapshot_from -> Nullable<Text>,
        snapshot_job -> Nullable<Text>,
        snapshot_until -> Nullable<Text>,
    }
}

diesel::table! {
    /// One row per job execution.
    sync_runs (id) {
        id -> BigInt,
        project_id -> BigInt,
        job_id -> Text,
        job_kind -> Text,
        trigger -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Text,
        counts -> Jsonb,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    /// Records isolated because they could not be applied.
    dead_records (id) {
        id -> BigInt,
        project_id -> BigInt,
        stream -> Text,
        entity_id -> Nullable<BigInt>,
        raw -> Jsonb,
        reason -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    /// The platform's changes to push to RetailCRM (two-way sync).
    retailcrm_outbox (id) {
        id -> BigInt,
        project_id -> BigInt,
        entity -> Text,
        local_id -> BigInt,
        fields -> Jsonb,
        created_at -> Timestamptz,
        state -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        retailcrm_id -> Nullable<BigInt>,
        conflict -> Nullable<Jsonb>,
    }
}

diesel::joinable!(retailcrm_integrations -> projects (project_id));
diesel::joinable!(orders -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    projects,
    retailcrm_integrations,
    users,
    orders,
    sync_cursors,
    sync_runs,
    dead_records,
    retailcrm_outbox,
);
