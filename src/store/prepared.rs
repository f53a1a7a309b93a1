//! Raw SQL that Postgres plans once per connection.
//!
//! diesel's `sql_query` marks every statement unsafe to cache, so each execution is parsed and
//! planned again, with an extra round trip to prepare it. The batch statements of a sync are
//! large CTEs over `UNNEST`ed arrays, run hundreds of times per sync with the same text:
//! planning them once per pooled connection is a measurable share of a batch (README,
//! Performance). [`prepared`] takes the same static text (`$1`, `$2`, ... for parameters) and
//! the same `.bind::<SqlType, _>(value)` chain as `sql_query`, and lets the connection's
//! statement cache key the statement by its text.
//!
//! diesel's public API can only add a parameter by writing its placeholder too, so the text is
//! walked and every `$n` is replaced by the n-th bound value's own placeholder (a `$n` used twice
//! is sent twice; the text stays the same for every execution, so it is cached once). Only for
//! static text: a statement built with `format!` would fill the cache with one entry per
//! variant, so those stay on `sql_query`.

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// Starts a cached statement; bind its parameters in order (`$1` first) with `.bind`.
pub fn prepared(sql: &'static str) -> Prepared {
    Prepared(sql)
}

/// A static SQL text without parameters bound yet.
#[derive(Debug, Clone, Copy)]
#[must_use = "queries are only executed when calling `load`, `execute` or similar"]
pub struct Prepared(&'static str);

/// A static SQL text and its parameters, `$1` innermost.
#[derive(Debug, Clone, Copy)]
#[must_use = "queries are only executed when calling `load`, `execute` or similar"]
pub struct Bound<Prev, V, ST> {
    prev: Prev,
    value: V,
    _sql_type: PhantomData<ST>,
}

/// The parameter list of a statement: its text and its n-th value.
pub trait Params {
    /// The statement's text.
    fn sql(&self) -> &'static str;
    /// How many values are bound.
    fn count(&self) -> usize;
    /// Pushes the value of `$n` (1-based) as the next parameter.
    fn push_nth<'b>(&'b self, n: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

impl Prepared {
    /// Binds `$1`.
    pub fn bind<ST, V>(self, value: V) -> Bound<Self, V, ST> {
        Bound {
            prev: self,
            value,
            _sql_type: PhantomData,
        }
    }
}

impl<Prev, V, ST> Bound<Prev, V, ST> {
    /// Binds the next parameter.
    pub fn bind<ST2, V2>(self, value: V2) -> Bound<Self, V2, ST2> {
        Bound {
            prev: self,
            value,
            _sql_type: PhantomData,
        }
    }
}

impl Params for Prepared {
    fn sql(&self) -> &'static str {
        self.0
    }
    fn count(&self) -> usize {
        0
    }
    fn push_nth<'b>(&'b self, n: usize, _out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        Err(unbound(self.0, n))
    }
}

impl<Prev, V, ST> Params for Bound<Prev, V, ST>
where
    Prev: Params,
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn sql(&self) -> &'static str {
        self.prev.sql()
    }
    fn count(&self) -> usize {
        self.prev.count() + 1
    }
    fn push_nth<'b>(&'b self, n: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if n == self.count() {
            out.push_bind_param::<ST, V>(&self.value)
        } else {
            self.prev.push_nth(n, out)
        }
    }
}

fn unbound(sql: &str, n: usize) -> diesel::result::Error {
    let head: String = sql.chars().take(60).collect();
    diesel::result::Error::QueryBuilderError(
        format!("statement `{head}...` uses ${n}, which has no bound value").into(),
    )
}

/// Writes `sql`, replacing each `$n` with the placeholder of the n-th value of `params`.
fn walk<'b, P: Params>(params: &'b P, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
    let sql = params.sql();
    let bytes = sql.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let n: usize = sql[i + 1..i + 1 + digits].parse().unwrap_or(0);
            if n == 0 || n > params.count() {
                return Err(unbound(sql, n));
            }
            out.push_sql(&sql[start..i]);
            params.push_nth(n, out)?;
            i += 1 + digits;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push_sql(&sql[start..]);
    Ok(())
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        walk(self, &mut out)
    }
}

impl<Prev, V, ST> QueryFragment<Pg> for Bound<Prev, V, ST>
where
    Self: Params,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        walk(self, &mut out)
    }
}

// No static query id: the statement cache keys these statements by their SQL text and the
// types of their parameters, which is what makes them cacheable at all.
impl QueryId for Prepared {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Prev, V, ST> QueryId for Bound<Prev, V, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = Untyped;
}

impl<Prev, V, ST> Query for Bound<Prev, V, ST> {
    type SqlType = Untyped;
}
