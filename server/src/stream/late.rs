//! Late events: a `KafkaSource(watermark_delay_threshold=...)` bounds how far behind the
//! stream's newest event time an event may be.
//!
//! A partition's watermark is the newest event time accepted from it minus the threshold; an
//! event stamped before its partition's watermark is *late*: it goes to the dead-letter sink
//! with a reason starting with `late` and is counted in
//! `larder_stream_events_total{outcome="late"}`, instead of changing windows that have been
//! served already (and it is left out of the offline copy). Spark's `withWatermark` (which
//! Feast's Spark stream processor applies) takes the newest event time over the whole topic
//! at micro-batch ends; Larder judges events one by one in partition order, so that every view
//! of a source, and the offline copy, make the same decision for the same event whatever the
//! interleaving of partitions and the micro-batch boundaries. The watermarks live in the
//! worker: after a restart they start again from the first event read.

use std::collections::BTreeMap;

/// A worker's watermarks, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// Newest event time accepted (ns since the epoch), per partition.
    newest: BTreeMap<i32, i64>,
}

impl Watermarks {
    /// Accepts an event of `partition` at `event_ts` (ns) or says why it is late; `delay_s` is
    /// the source's `watermark_delay_threshold` (`None`: no event is late).
    pub fn admit(&mut self, partition: i32, event_ts: i64, delay_s: Option<i64>) -> Result<(), String> {
        let Some(delay_s) = delay_s else {
            return Ok(());
        };
        let newest = self.newest.entry(partition).or_insert(event_ts);
        let mark = newest.saturating_sub(delay_s.saturating_mul(1_000_000_000));
        if event_ts < mark {
            return Err(format!(
                "late: event time {} is before the watermark {} of partition {partition} (its newest event \
                 time, {}, minus watermark_delay_threshold {delay_s} s)",
                crate::time::format_feast(event_ts),
                crate::time::format_feast(mark),
                crate::time::format_feast(*newest),
            ));
        }
        *newest = (*newest).max(event_ts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn events_older_than_the_newest_minus_the_delay_are_late() {
        let mut w = Watermarks::default();
        assert!(w.admit(0, 1000 * S, Some(60)).is_ok());
        assert!(
            w.admit(0, 940 * S, Some(60)).is_ok(),
            "exactly at the watermark is on time"
        );
        let late = w.admit(0, 939 * S, Some(60)).unwrap_err();
        assert!(late.starts_with("late: ") && late.contains("partition 0"), "{late}");
        // A late event does not move the watermark; a newer one does.
        assert!(w.admit(0, 1100 * S, Some(60)).is_ok());
        assert!(w.admit(0, 1000 * S, Some(60)).is_err());
        assert!(
            w.admit(0, 1050 * S, Some(60)).is_ok(),
            "older than the newest but within the delay"
        );
    }

    #[test]
    fn partitions_have_their_own_watermark() {
        let mut w = Watermarks::default();
        assert!(w.admit(0, 1000 * S, Some(60)).is_ok());
        assert!(
            w.admit(1, 100 * S, Some(60)).is_ok(),
            "partition 1 has seen nothing newer"
        );
        assert!(w.admit(1, 30 * S, Some(60)).is_err());
    }

    #[test]
    fn without_a_threshold_nothing_is_late() {
        let mut w = Watermarks::default();
        assert!(w.admit(0, 1000 * S, None).is_ok());
        assert!(w.admit(0, 0, None).is_ok());
    }
}
