//! Event series and the node's budget: repeats counted on one Event, writes
//! that wait for a token, and a bound on the series kept.
use std::{collections::BTreeMap, time::Instant};

use super::{
    super::Now, BURST, EventFailure, EventWrite, MAX_SERIES, Occurrence, REFILL, Reason,
    SERIES_INTERVAL, SERIES_WINDOW, event_name,
};

#[derive(Clone, Debug)]
pub(super) struct Series {
    name: String,
    first: jiff::Timestamp,
    count: u32,
    last_observed: jiff::Timestamp,
    last_instant: Instant,
    /// The count the cluster has (0: not created yet).
    written: u32,
    /// The count being written, while a write is out.
    sending: Option<u32>,
    last_write: Option<Instant>,
    /// After a failed write, not before this.
    retry_at: Option<Instant>,
    /// The order series started in.
    seq: u64,
}

/// This node's Events: the series, the bucket, the counts for metrics.
#[derive(Debug)]
pub(in crate::daemon::machine) struct Events {
    node: String,
    series: BTreeMap<Occurrence, Series>,
    /// Series started so far.
    started: u64,
    tokens: u32,
    refilled: Option<Instant>,
    /// Occurrences, by reason.
    pub decided: BTreeMap<Reason, u64>,
    /// Occurrences dropped: too many series at once.
    pub dropped: u64,
    /// Writes that failed.
    pub failed: u64,
}

impl Events {
    pub(in crate::daemon::machine) fn new(node: &str) -> Events {
        Events {
            node: node.to_owned(),
            series: BTreeMap::new(),
            started: 0,
            tokens: BURST,
            refilled: None,
            decided: Reason::ALL.iter().map(|r| (*r, 0)).collect(),
            dropped: 0,
            failed: 0,
        }
    }

    /// Takes in something that happened.
    pub(in crate::daemon::machine) fn observe(&mut self, occurrence: Occurrence, now: Now) {
        *self.decided.entry(occurrence.reason).or_insert(0) += 1;
        self.expire(now);
        if let Some(series) = self.series.get_mut(&occurrence)
            && now.instant.duration_since(series.last_instant) <= SERIES_WINDOW
        {
            series.count += 1;
            series.last_observed = now.time;
            series.last_instant = now.instant;
            return;
        }
        // A series too old to join: this starts another Event.
        self.series.remove(&occurrence);
        if self.series.len() >= MAX_SERIES {
            self.dropped += 1;
            return;
        }
        let name = event_name(&occurrence, &self.node, now.time);
        self.started += 1;
        self.series.insert(
            occurrence,
            Series {
                name,
                first: now.time,
                count: 1,
                last_observed: now.time,
                last_instant: now.instant,
                written: 0,
                sending: None,
                last_write: None,
                retry_at: None,
                seq: self.started,
            },
        );
    }

    /// Forgets series that are over and written.
    pub(super) fn expire(&mut self, now: Now) {
        self.series.retain(|_, s| {
            s.sending.is_some()
                || s.written < s.count
                || now.instant.duration_since(s.last_instant) <= SERIES_WINDOW
        });
    }

    pub(super) fn refill(&mut self, now: Now) {
        let Some(since) = self.refilled else {
            self.refilled = Some(now.instant);
            return;
        };
        let elapsed = now.instant.duration_since(since);
        let earned = (elapsed.as_secs_f64() / REFILL.as_secs_f64()) as u32;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(BURST);
            self.refilled = Some(since + REFILL * earned);
        }
        if self.tokens == BURST {
            self.refilled = Some(now.instant);
        }
    }

    /// The writes due now, within the bucket: creations first (oldest
    /// first), then series counts.
    pub(in crate::daemon::machine) fn due(&mut self, now: Now) -> Vec<EventWrite> {
        self.refill(now);
        let mut candidates: Vec<(bool, Instant, u64, Occurrence)> = self
            .series
            .iter()
            .filter(|(_, s)| {
                s.sending.is_none()
                    && s.written < s.count
                    && s.retry_at.is_none_or(|t| now.instant >= t)
                    && (s.written <= 1
                        || s.last_write
                            .is_none_or(|t| now.instant.duration_since(t) >= SERIES_INTERVAL))
            })
            .map(|(o, s)| {
                let at = if s.written == 0 {
                    s.last_instant
                } else {
                    s.last_write.unwrap_or(s.last_instant)
                };
                (s.written > 0, at, s.seq, o.clone())
            })
            .collect();
        candidates.sort_by_key(|c| (c.0, c.1, c.2));
        let mut writes = Vec::new();
        for (_, _, _, occurrence) in candidates {
            if self.tokens == 0 {
                break;
            }
            let Some(s) = self.series.get_mut(&occurrence) else {
                continue;
            };
            self.tokens -= 1;
            s.sending = Some(s.count);
            s.last_write = Some(now.instant);
            let series = (s.count > 1).then_some((s.count, s.last_observed));
            writes.push(if s.written == 0 {
                EventWrite::Create {
                    name: s.name.clone(),
                    occurrence,
                    first: s.first,
                    series,
                }
            } else {
                EventWrite::Series {
                    name: s.name.clone(),
                    namespace: occurrence.regarding.namespace.clone(),
                    count: s.count,
                    last: s.last_observed,
                }
            });
        }
        writes
    }

    /// Takes the shell's answers to [`due`](Self::due)'s writes. A write
    /// that failed is tried again a [`REFILL`] later.
    pub(in crate::daemon::machine) fn written(
        &mut self,
        results: Vec<(String, Result<(), EventFailure>)>,
        now: Now,
    ) {
        for (name, result) in results {
            let Some(s) = self.series.values_mut().find(|s| s.name == name) else {
                continue;
            };
            let Some(sent) = s.sending.take() else {
                continue;
            };
            s.retry_at = None;
            match result {
                Ok(()) => s.written = sent,
                Err(EventFailure::Exists) if s.written == 0 => s.written = sent,
                // Expired: created again, with its whole count.
                Err(EventFailure::Gone) => s.written = 0,
                Err(EventFailure::Exists | EventFailure::Other(_)) => {
                    self.failed += 1;
                    s.retry_at = Some(now.instant + REFILL);
                }
            }
        }
    }
}
