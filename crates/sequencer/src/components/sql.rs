//! What the SQL sequencers share beyond `layotto-sql`.

pub(crate) use layotto_sql::{health, run};

pub(crate) const DEFAULT_TABLE: &str = "layotto_sequencer";

/// The ids of a segment of `size` whose last id is `last`.
pub(crate) fn segment_range(last: i64, size: u32) -> std::ops::RangeInclusive<i64> {
    last - i64::from(size) + 1..=last
}
