//! Physical limits: the same order rows the sync wrote, written again by hand the two fastest
//! ways Postgres offers, into empty tables of the same shape (columns, defaults, checks,
//! unique indexes and foreign keys of `orders`):
//! - a batched `INSERT .. SELECT FROM UNNEST(arrays) ON CONFLICT DO UPDATE`, one statement and
//!   one transaction per batch of the sync's page size (what a perfect upsert loop would do);
//! - one `COPY .. FROM STDIN` of all rows (the bulk-load ceiling).

use std::io::Cursor;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde::Serialize;

use super::BenchError;

/// One order row in `orders` shape (numbers and times as Postgres text).
#[derive(Debug, Clone)]
pub struct OrderRow {
    project_id: i64,
    user_id: Option<i64>,
    order_number: String,
    retailcrm_order_id: Option<i64>,
    status: String,
    retailcrm_status: Option<String>,
    total_amount: String,
    currency: Option<String>,
    ordered_at: Option<String>,
}

/// Rates of the two baselines.
#[derive(Debug, Clone, Serialize)]
pub struct Baselines {
    /// Rows written by each baseline.
    pub rows: u64,
    /// Batch size of the upsert baseline.
    pub batch_size: u64,
    /// Seconds of the batched upsert.
    pub upsert_secs: f64,
    /// Rows per second of the batched upsert.
    pub upsert_rows_per_sec: f64,
    /// Seconds of the COPY.
    pub copy_secs: f64,
    /// Rows per second of the COPY.
    pub copy_rows_per_sec: f64,
}

/// Reads the orders the sync stored for `project_id`.
pub async fn load_rows(
    pg: &tokio_postgres::Client,
    project_id: i64,
) -> Result<Vec<OrderRow>, BenchError> {
    let rows = pg
        .query(
            "SELECT project_id, user_id, order_number, retailcrm_order_id, status, \
             retailcrm_status, total_amount::text, currency, ordered_at::text \
             FROM orders WHERE project_id = $1 ORDER BY retailcrm_order_id",
            &[&project_id],
        )
        .await
        .map_err(BenchError::pg("read synced orders"))?;
    rows.iter()
        .map(|r| {
            Ok(OrderRow {
                project_id: r.try_get(0)?,
                user_id: r.try_get(1)?,
                order_number: r.try_get(2)?,
                retailcrm_order_id: r.try_get(3)?,
                status: r.try_get(4)?,
                retailcrm_status: r.try_get(5)?,
                total_amount: r.try_get(6)?,
                currency: r.try_get(7)?,
                ordered_at: r.try_get(8)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(BenchError::pg("decode synced orders"))
}

/// Creates an empty copy of `orders` named `name` (indexes and foreign keys included).
async fn shape_table(pg: &tokio_postgres::Client, name: &str) -> Result<(), BenchError> {
    pg.batch_execute(&format!(
        "DROP TABLE IF EXISTS {name}; \
         CREATE TABLE {name} (LIKE orders INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
         INCLUDING INDEXES); \
         ALTER TABLE {name} ADD FOREIGN KEY (project_id) REFERENCES projects (id) \
         ON DELETE CASCADE, ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL;"
    ))
    .await
    .map_err(BenchError::pg("create a baseline table"))
}

const COLUMNS: &str = "project_id, user_id, order_number, retailcrm_order_id, status, \
                       retailcrm_status, total_amount, currency, ordered_at";

/// Runs both baselines on `rows` and drops their tables afterwards.
pub async fn measure(
    pg: &tokio_postgres::Client,
    rows: &[OrderRow],
    batch_size: usize,
) -> Result<Baselines, BenchError> {
    let upsert = upsert(pg, rows, batch_size.max(1)).await?;
    let copy = copy(pg, rows).await?;
    pg.batch_execute("DROP TABLE IF EXISTS bench_upsert; DROP TABLE IF EXISTS bench_copy;")
        .await
        .map_err(BenchError::pg("drop the baseline tables"))?;
    let n = rows.len() as u64;
    let rate = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    Ok(Baselines {
        rows: n,
        batch_size: batch_size as u64,
        upsert_secs: upsert.as_secs_f64(),
        upsert_rows_per_sec: rate(upsert),
        copy_secs: copy.as_secs_f64(),
        copy_rows_per_sec: rate(copy),
    })
}

/// Batched `INSERT .. ON CONFLICT DO UPDATE`, one autocommitted statement per batch.
async fn upsert(
    pg: &tokio_postgres::Client,
    rows: &[OrderRow],
    batch_size: usize,
) -> Result<Duration, BenchError> {
    shape_table(pg, "bench_upsert").await?;
    let stmt = pg
        .prepare(&format!(
            "INSERT INTO bench_upsert ({COLUMNS}) \
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::text[], \
             $6::text[], $7::text[]::numeric[], $8::text[], $9::text[]::timestamptz[]) \
             ON CONFLICT (project_id, retailcrm_order_id) DO UPDATE SET \
             user_id = EXCLUDED.user_id, order_number = EXCLUDED.order_number, \
             status = EXCLUDED.status, retailcrm_status = EXCLUDED.retailcrm_status, \
             total_amount = EXCLUDED.total_amount, currency = EXCLUDED.currency, \
             ordered_at = EXCLUDED.ordered_at, updated_at = now()"
        ))
        .await
        .map_err(BenchError::pg("prepare the upsert baseline"))?;
    let started = Instant::now();
    for chunk in rows.chunks(batch_size) {
        let project: Vec<i64> = chunk.iter().map(|r| r.project_id).collect();
        let user: Vec<Option<i64>> = chunk.iter().map(|r| r.user_id).collect();
        let number: Vec<&str> = chunk.iter().map(|r| r.order_number.as_str()).collect();
        let rid: Vec<Option<i64>> = chunk.iter().map(|r| r.retailcrm_order_id).collect();
        let status: Vec<&str> = chunk.iter().map(|r| r.status.as_str()).collect();
        let raw: Vec<Option<&str>> = chunk
            .iter()
            .map(|r| r.retailcrm_status.as_deref())
            .collect();
        let total: Vec<&str> = chunk.iter().map(|r| r.total_amount.as_str()).collect();
        let currency: Vec<Option<&str>> = chunk.iter().map(|r| r.currency.as_deref()).collect();
        let at: Vec<Option<&str>> = chunk.iter().map(|r| r.ordered_at.as_deref()).collect();
        pg.execute(
            &stmt,
            &[
                &project, &user, &number, &rid, &status, &raw, &total, &currency, &at,
            ],
        )
        .await
        .map_err(BenchError::pg("upsert baseline batch"))?;
    }
    Ok(started.elapsed())
}

/// One `COPY FROM STDIN` (text format) of all rows, streamed in 1 MiB chunks.
async fn copy(pg: &tokio_postgres::Client, rows: &[OrderRow]) -> Result<Duration, BenchError> {
    shape_table(pg, "bench_copy").await?;
    let started = Instant::now();
    let sink = pg
        .copy_in::<_, Cursor<Vec<u8>>>(&format!("COPY bench_copy ({COLUMNS}) FROM STDIN"))
        .await
        .map_err(BenchError::pg("start COPY"))?;
    futures::pin_mut!(sink);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    for r in rows {
        let project = r.project_id.to_string();
        let user = r.user_id.map(|v| v.to_string());
        let rid = r.retailcrm_order_id.map(|v| v.to_string());
        let fields: [Option<&str>; 9] = [
            Some(&project),
            user.as_deref(),
            Some(&r.order_number),
            rid.as_deref(),
            Some(&r.status),
            r.retailcrm_status.as_deref(),
            Some(&r.total_amount),
            r.currency.as_deref(),
            r.ordered_at.as_deref(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            match f {
                None => buf.extend_from_slice(b"\\N"),
                Some(text) => escape_copy(text, &mut buf),
            }
        }
        buf.push(b'\n');
        if buf.len() >= 1 << 20 {
            let chunk = std::mem::replace(&mut buf, Vec::with_capacity(1 << 20));
            sink.send(Cursor::new(chunk))
                .await
                .map_err(BenchError::pg("COPY data"))?;
        }
    }
    if !buf.is_empty() {
        sink.send(Cursor::new(buf))
            .await
            .map_err(BenchError::pg("COPY data"))?;
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(BenchError::pg("finish COPY"))?;
    Ok(started.elapsed())
}

/// Escapes one value for COPY's text format.
fn escape_copy(text: &str, out: &mut Vec<u8>) {
    for b in text.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape_copy;

    #[test]
    fn copy_text_escapes_separators() {
        let mut out = Vec::new();
        escape_copy("a\tb\\c\nd", &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd");
    }
}
