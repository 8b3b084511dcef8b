//! What the SQL sequencers share beyond `layotto-sql`.

pub(crate) use layotto_sql::{
    DEFAULT_MAX_CONNS, DEFAULT_TIMEOUT, connect_error, duration, health, run, sql_error,
};

use layotto_core::{Metadata, Result};

pub(crate) const DEFAULT_TABLE: &str = "layotto_sequencer";

/// `tableName`, default `layotto_sequencer` (Go Layotto's).
pub(crate) fn table_name(component: &str, metadata: &Metadata) -> Result<String> {
    layotto_sql::table_name(component, metadata, DEFAULT_TABLE)
}

/// The ids of a segment of `size` whose last id is `last`.
pub(crate) fn segment_range(last: i64, size: u32) -> std::ops::RangeInclusive<i64> {
    last - i64::from(size) + 1..=last
}
