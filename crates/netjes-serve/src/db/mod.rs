//! The one SQL interface of serve's store, over the embedded SQLite or a
//! PostgreSQL shared by several `netjes serve` instances and the milters
//! of several MX hosts. The store's statements are written once, in the
//! SQL both engines take (`ON CONFLICT`, `RETURNING`, quoted `"end"` and
//! `"user"`); the few differences are translated in `postgres.rs`
//! (`?N` parameters, `instr`, the column types of the schema).
//!
//! Values are typed on our side ([`Value`], also when NULL), so PostgreSQL
//! never has to guess a parameter's type from the statement.
//!
//! Error contract: a unique or foreign-key violation is
//! [`DbError::Constraint`]; a database that cannot be reached (down,
//! restarting, the connection lost) is [`DbError::Unavailable`], which
//! the web UI answers with 503 and the milter outlives with the keys it
//! has; no row where one was asked for is [`DbError::NoRows`].

mod postgres;
mod sqlite;

pub use self::postgres::PgSettings;
use std::cell::RefCell;

#[derive(Debug, thiserror::Error, Clone)]
pub enum DbError {
    #[error("no such row")]
    NoRows,
    #[error("constraint: {0}")]
    Constraint(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("column {0}: {1}")]
    Type(usize, String),
    #[error("{0}")]
    Other(String),
}

/// What a NULL would have been: PostgreSQL types every parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Int,
    Text,
    Blob,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// A Rust value as a statement parameter.
pub trait ToValue {
    const KIND: Kind;
    fn to_value(&self) -> Value;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            const KIND: Kind = Kind::Int;
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_value!(i64, i32, u32, u16, u8, usize, u64);

macro_rules! int_from {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range"))
            }
        }
    )*};
}
int_from!(i32, u32, u16, u8, u64, usize);

impl ToValue for bool {
    const KIND: Kind = Kind::Int;
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
}
impl ToValue for str {
    const KIND: Kind = Kind::Text;
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    const KIND: Kind = Kind::Text;
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    const KIND: Kind = Kind::Blob;
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    const KIND: Kind = Kind::Blob;
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    const KIND: Kind = T::KIND;
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    const KIND: Kind = T::KIND;
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null(T::KIND),
        }
    }
}
impl ToValue for Value {
    const KIND: Kind = Kind::Text;
    fn to_value(&self) -> Value {
        self.clone()
    }
}

/// `params![a, b]`: the statement's parameters, in order (`?1`, `?2`).
#[macro_export]
macro_rules! params {
    ($($x:expr),* $(,)?) => {
        [$($crate::db::ToValue::to_value(&$x)),*]
    };
}

/// A column value as a Rust value.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self, String>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("{other:?} is not an integer")),
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        i64::from_value(v).map(|i| i != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("{other:?} is not text")),
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(format!("{other:?} is not a blob")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null(_) => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub(crate) Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, DbError> {
        let v = self.0.get(i).ok_or_else(|| DbError::Type(i, "no such column".into()))?;
        T::from_value(v).map_err(|e| DbError::Type(i, e))
    }
}

/// `.optional()`: NoRows as None.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<postgres::PgConn>>),
}

/// A connection to either engine.
pub struct Conn(Backend);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_postgres() { "Conn(PostgreSQL)" } else { "Conn(SQLite)" })
    }
}

impl Conn {
    pub fn sqlite(c: rusqlite::Connection) -> Conn {
        Conn(Backend::Sqlite(c))
    }

    /// Connects to PostgreSQL and brings serve's schema up to date.
    pub fn postgres(settings: PgSettings, migrations: &[&str]) -> Result<Conn, DbError> {
        Ok(Conn(Backend::Postgres(Box::new(RefCell::new(postgres::PgConn::open(settings, migrations)?)))))
    }

    /// Another connection to the same PostgreSQL, made on first use (the
    /// schema is brought up to date by the first, `postgres`).
    pub fn postgres_lazy(settings: PgSettings) -> Conn {
        Conn(Backend::Postgres(Box::new(RefCell::new(postgres::PgConn::lazy(settings)))))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.0, Backend::Postgres(_))
    }

    /// Runs one statement; how many rows it changed.
    pub fn execute<P: AsRef<[Value]>>(&self, sql: &str, p: P) -> Result<usize, DbError> {
        match &self.0 {
            Backend::Sqlite(c) => sqlite::execute(c, sql, p.as_ref()),
            Backend::Postgres(c) => c.borrow_mut().execute(sql, p.as_ref()),
        }
    }

    /// Every row of a query.
    pub fn query<P: AsRef<[Value]>>(&self, sql: &str, p: P) -> Result<Vec<Row>, DbError> {
        match &self.0 {
            Backend::Sqlite(c) => sqlite::query(c, sql, p.as_ref()),
            Backend::Postgres(c) => c.borrow_mut().query(sql, p.as_ref()),
        }
    }

    /// The first row, through `f`; NoRows when there is none.
    pub fn query_row<T, P: AsRef<[Value]>>(&self, sql: &str, p: P, f: impl FnOnce(&Row) -> Result<T, DbError>) -> Result<T, DbError> {
        let rows = self.query(sql, p)?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// Every row, through `f`.
    pub fn query_map<T, P: AsRef<[Value]>>(&self, sql: &str, p: P, f: impl FnMut(&Row) -> Result<T, DbError>) -> Result<Vec<T>, DbError> {
        self.query(sql, p)?.iter().map(f).collect()
    }

    /// A statement to run with several sets of parameters. Each engine
    /// caches what it prepared, so this only remembers the text.
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        Ok(Stmt { conn: self, sql: sql.to_string() })
    }

    /// Statements without parameters, one after another.
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.0 {
            Backend::Sqlite(c) => c.execute_batch(sql).map_err(sqlite::err),
            Backend::Postgres(c) => c.borrow_mut().batch(sql),
        }
    }

    /// A transaction: rolled back when dropped without `commit`. SQLite's
    /// takes the write lock at once (IMMEDIATE), so that two processes
    /// never both read and then fail to upgrade.
    pub fn transaction(&self) -> Result<Tx<'_>, DbError> {
        self.execute_batch(if self.is_postgres() { "BEGIN" } else { "BEGIN IMMEDIATE" })?;
        Ok(Tx { conn: self, done: false })
    }
}

pub struct Stmt<'a> {
    conn: &'a Conn,
    sql: String,
}

impl Stmt<'_> {
    /// Every row through `f`, as an iterator of results.
    pub fn query_map<T, P: AsRef<[Value]>>(&mut self, p: P, mut f: impl FnMut(&Row) -> Result<T, DbError>) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        Ok(self.conn.query(&self.sql, p)?.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }

    pub fn execute<P: AsRef<[Value]>>(&mut self, p: P) -> Result<usize, DbError> {
        self.conn.execute(&self.sql, p)
    }

    pub fn query_row<T, P: AsRef<[Value]>>(&mut self, p: P, f: impl FnOnce(&Row) -> Result<T, DbError>) -> Result<T, DbError> {
        self.conn.query_row(&self.sql, p, f)
    }
}

pub struct Tx<'a> {
    conn: &'a Conn,
    done: bool,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Tx<'_> {
    /// A COMMIT that fails (SQLite busy) leaves the transaction open
    /// there; it is then rolled back when `self` drops.
    pub fn commit(mut self) -> Result<(), DbError> {
        self.conn.execute_batch("COMMIT")?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_carry_their_type_even_when_null() {
        let none: Option<&str> = None;
        let p = params![1i64, "a", none, Some(2u32), vec![1u8], true];
        assert_eq!(p.to_vec(), vec![Value::Int(1), Value::Text("a".into()), Value::Null(Kind::Text), Value::Int(2), Value::Blob(vec![1]), Value::Int(1)]);
    }

    #[test]
    fn sqlite_round_trip_and_rollback() {
        let c = Conn::sqlite(rusqlite::Connection::open_in_memory().unwrap());
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT UNIQUE, b BLOB)").unwrap();
        let id: i64 = c.query_row("INSERT INTO t (a, b) VALUES (?1, ?2) RETURNING id", params!["x", vec![0u8, 255]], |r| r.get(0)).unwrap();
        assert_eq!(id, 1);
        assert!(matches!(c.execute("INSERT INTO t (a) VALUES (?1)", params!["x"]), Err(DbError::Constraint(_))));
        {
            let tx = c.transaction().unwrap();
            tx.execute("INSERT INTO t (a) VALUES (?1)", params!["y"]).unwrap();
        }
        assert_eq!(c.query_row("SELECT count(*) FROM t", [], |r| r.get::<i64>(0)).unwrap(), 1, "rolled back");
        let b: Option<Vec<u8>> = c.query_row("SELECT b FROM t WHERE a = ?1", params!["x"], |r| r.get(0)).unwrap();
        assert_eq!(b, Some(vec![0, 255]));
        assert!(matches!(c.query_row("SELECT a FROM t WHERE id = 9", [], |r| r.get::<String>(0)), Err(DbError::NoRows)));
    }
}
