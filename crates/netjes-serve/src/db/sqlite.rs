//! The embedded engine: rusqlite with our values.

use super::{DbError, Kind, Row, Value};
use rusqlite::types::{Value as SqlValue, ValueRef};

pub(super) fn err(e: rusqlite::Error) -> DbError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => DbError::Constraint(e.to_string()),
        rusqlite::Error::QueryReturnedNoRows => DbError::NoRows,
        _ => DbError::Other(format!("SQLite: {e}")),
    }
}

fn bind(p: &[Value]) -> Vec<SqlValue> {
    p.iter()
        .map(|v| match v {
            Value::Null(_) => SqlValue::Null,
            Value::Int(i) => SqlValue::Integer(*i),
            Value::Text(s) => SqlValue::Text(s.clone()),
            Value::Blob(b) => SqlValue::Blob(b.clone()),
        })
        .collect()
}

pub(super) fn execute(c: &rusqlite::Connection, sql: &str, p: &[Value]) -> Result<usize, DbError> {
    let mut st = c.prepare_cached(sql).map_err(err)?;
    st.execute(rusqlite::params_from_iter(bind(p))).map_err(err)
}

pub(super) fn query(c: &rusqlite::Connection, sql: &str, p: &[Value]) -> Result<Vec<Row>, DbError> {
    let mut st = c.prepare_cached(sql).map_err(err)?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(bind(p))).map_err(err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(err)? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i).map_err(err)? {
                ValueRef::Null => Value::Null(Kind::Text),
                ValueRef::Integer(i) => Value::Int(i),
                // No column of ours holds a float; a computed one is cut.
                ValueRef::Real(f) => Value::Int(f as i64),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(Row(row));
    }
    Ok(out)
}
