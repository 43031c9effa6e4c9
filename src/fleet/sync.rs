//! The fleet's sync service as a state machine with no I/O: what to ask etcd next, and what
//! to do with its answers. The shell (`shell/fleet_service.rs`) sends the requests, feeds the
//! answers back, applies the revocations it is handed and logs the transitions.
//!
//! ```text
//!   Down --tick--> Loading (paged Range at one revision, by slice) --last page--> Watching
//!    ^                 |                                                  |
//!    +---- failure ----+---------- stream closed / canceled -------------+
//!   Watching --compacted--> Loading (full reload, the store stays loaded)
//! ```
//! A reconnect after the first load resumes the watch at the last applied revision + 1, so
//! etcd replays every event missed in between; only a compacted revision forces a reload.
//! Deletions (lease expiries) are ignored: local entries carry their own expiry.

use super::etcd_api::{
    range_request, watch_create_request, EventKind, RangeResponse, WatchResponse,
};
use super::record::{
    decode_revocation, revocation_slice_end, revocation_slice_of, revocation_slice_start,
    revocations_key_start, revocations_range_end, FleetRevocation, REVOCATION_SLICES,
};

/// First retry delay after a failure; doubles up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: u64 = 100;
const MAX_BACKOFF_MS: u64 = 1000;

/// A request for the shell to send.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Unary `etcdserverpb.KV/Range` with this message.
    Range(Vec<u8>),
    /// Open the `etcdserverpb.Watch/Watch` stream and send this message first.
    OpenWatch(Vec<u8>),
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    /// Not connected; try again at `retry_at_ms`.
    Down { retry_at_ms: u64 },
    /// Reading the revocations page by page, all at `revision` (0 until the first page):
    /// first the whole range, and when it does not fit one page, slice by slice from the
    /// slice the first page ended in (see [`REVOCATION_SLICES`]).
    Loading {
        revision: i64,
        slice: Option<u16>,
        loaded_so_far: u64,
        started_ms: u64,
    },
    /// The watch stream is open (`created` once etcd confirmed it).
    Watching { created: bool },
}

/// What an answer changed, for the shell to apply, count and log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Revocations to merge into the local store (then bump the generation once).
    pub apply: Vec<FleetRevocation>,
    /// Records under the prefix this version cannot read (skipped, logged).
    pub skipped: u32,
    /// The next request, if any.
    pub command: Option<Command>,
    /// A state change worth a log line.
    pub transition: Option<String>,
    /// The first complete load finished: session requests may be served.
    pub became_loaded: bool,
    /// A full reload started because the watch's revision was compacted.
    pub full_reload: bool,
}

/// The sync state of one Envoy.
#[derive(Debug)]
pub struct FleetSync {
    prefix: String,
    page_size: i64,
    phase: Phase,
    /// Every revocation up to this etcd revision is applied.
    revision: i64,
    /// The first full load completed (it stays true across reconnects and reloads).
    loaded: bool,
    backoff_ms: u64,
    /// Failures since the last success, and when the last one was logged: a long outage
    /// logs its start and then one line a minute, not one per retry.
    failures: u32,
    failure_logged_ms: u64,
}

/// How often a continuing outage is logged.
const OUTAGE_LOG_INTERVAL_MS: u64 = 60_000;

impl FleetSync {
    pub fn new(prefix: &str, page_size: u32) -> Self {
        FleetSync {
            prefix: prefix.to_string(),
            page_size: i64::from(page_size.max(1)),
            phase: Phase::Down { retry_at_ms: 0 },
            revision: 0,
            loaded: false,
            backoff_ms: FIRST_BACKOFF_MS,
            failures: 0,
            failure_logged_ms: 0,
        }
    }

    /// The last applied etcd revision.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Connected: the watch is confirmed by etcd.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Watching { created: true })
    }

    /// Whether a Range answer is awaited (the shell has one call in flight at most).
    pub fn is_loading(&self) -> bool {
        matches!(self.phase, Phase::Loading { .. })
    }

    /// Called on every tick: when down and the backoff has passed, the next attempt.
    pub fn on_tick(&mut self, now_ms: u64) -> Step {
        match self.phase {
            Phase::Down { retry_at_ms } if now_ms >= retry_at_ms => {
                if self.loaded {
                    self.open_watch(Some(format!(
                        "fleet: reconnecting, resuming the watch at revision {}",
                        self.revision.saturating_add(1)
                    )))
                } else {
                    self.start_load(now_ms, "fleet: loading revocations from etcd".into())
                }
            }
            _ => Step::default(),
        }
    }

    fn start_load(&mut self, now_ms: u64, why: String) -> Step {
        let start = revocations_key_start(&self.prefix);
        let end = revocations_range_end(&self.prefix);
        self.phase = Phase::Loading {
            revision: 0,
            slice: None,
            loaded_so_far: 0,
            started_ms: now_ms,
        };
        Step {
            command: Some(Command::Range(range_request(
                &start,
                &end,
                self.page_size,
                0,
            ))),
            transition: Some(why),
            ..Step::default()
        }
    }

    fn open_watch(&mut self, why: Option<String>) -> Step {
        self.phase = Phase::Watching { created: false };
        let request = watch_create_request(
            &revocations_key_start(&self.prefix),
            &revocations_range_end(&self.prefix),
            self.revision.saturating_add(1),
            true,
        );
        Step {
            command: Some(Command::OpenWatch(request)),
            transition: why,
            ..Step::default()
        }
    }

    /// A page of the load arrived.
    pub fn on_range(&mut self, page: &RangeResponse, now_ms: u64) -> Step {
        let Phase::Loading {
            revision,
            slice,
            loaded_so_far,
            started_ms,
        } = &self.phase
        else {
            return Step::default();
        };
        let revision = if *revision == 0 {
            page.revision
        } else {
            *revision
        };
        let (slice, started_ms) = (*slice, *started_ms);
        let mut step = Step::default();
        for kv in &page.kvs {
            match decode_revocation(&self.prefix, &kv.key, &kv.value) {
                Ok(record) => step.apply.push(record),
                Err(_) => step.skipped += 1,
            }
        }
        let loaded_so_far = loaded_so_far.saturating_add(step.apply.len() as u64);
        let last_key = page.kvs.last().map(|kv| kv.key.clone());
        // The next page: the rest of this slice (or of the slice the first, unsliced page
        // ended in), else the next slice, else done.
        let next = match (last_key.filter(|_| page.more), slice) {
            (Some(mut key), _) => {
                let current = slice.unwrap_or_else(|| revocation_slice_of(&self.prefix, &key));
                key.push(0);
                Some((current, key))
            }
            (None, Some(current)) if current + 1 < REVOCATION_SLICES => Some((
                current + 1,
                revocation_slice_start(&self.prefix, current + 1),
            )),
            (None, _) => None,
        };
        match next {
            Some((slice, key)) => {
                step.command = Some(Command::Range(range_request(
                    &key,
                    &revocation_slice_end(&self.prefix, slice),
                    self.page_size,
                    revision,
                )));
                self.phase = Phase::Loading {
                    revision,
                    slice: Some(slice),
                    loaded_so_far,
                    started_ms,
                };
            }
            None => {
                self.revision = self.revision.max(revision);
                step.became_loaded = !self.loaded;
                self.loaded = true;
                self.backoff_ms = FIRST_BACKOFF_MS;
                self.failures = 0;
                let done = self.open_watch(None);
                step.command = done.command;
                step.transition = Some(format!(
                    "fleet: loaded {loaded_so_far} revocations at revision {revision} in {} ms; watching from revision {}",
                    now_ms.saturating_sub(started_ms),
                    revision.saturating_add(1)
                ));
            }
        }
        step
    }

    /// A message on the watch stream.
    pub fn on_watch(&mut self, message: &WatchResponse, now_ms: u64) -> Step {
        if !matches!(self.phase, Phase::Watching { .. }) {
            return Step::default();
        }
        if message.canceled {
            if message.compact_revision > 0 {
                let mut step = self.start_load(
                    now_ms,
                    format!(
                        "fleet: revision {} was compacted (oldest kept {}): reloading every revocation",
                        self.revision.saturating_add(1),
                        message.compact_revision
                    ),
                );
                step.full_reload = true;
                return step;
            }
            return self.fail(
                now_ms,
                &format!("watch canceled by etcd: {}", message.cancel_reason),
            );
        }
        let mut step = Step::default();
        if message.created {
            if !self.is_connected() {
                step.transition = Some(format!(
                    "fleet: connected, watching from revision {}",
                    self.revision.saturating_add(1)
                ));
            }
            self.phase = Phase::Watching { created: true };
            self.backoff_ms = FIRST_BACKOFF_MS;
            self.failures = 0;
        }
        for event in &message.events {
            self.revision = self.revision.max(event.kv.mod_revision);
            if event.kind != EventKind::Put {
                continue;
            }
            match decode_revocation(&self.prefix, &event.kv.key, &event.kv.value) {
                Ok(record) => step.apply.push(record),
                Err(_) => step.skipped += 1,
            }
        }
        if message.events.is_empty() && !message.created {
            // A progress notification: every event up to this revision was sent.
            self.revision = self.revision.max(message.revision);
        }
        step
    }

    /// The Range call failed (status is the gRPC status; 11 is a compacted load revision).
    pub fn on_range_failed(&mut self, status: u32, now_ms: u64) -> Step {
        if !self.is_loading() {
            return Step::default();
        }
        self.fail(now_ms, &format!("load failed with gRPC status {status}"))
    }

    /// The watch stream closed (or could not be opened).
    pub fn on_stream_closed(&mut self, status: u32, now_ms: u64) -> Step {
        if !matches!(self.phase, Phase::Watching { .. }) {
            return Step::default();
        }
        self.fail(now_ms, &format!("watch closed with gRPC status {status}"))
    }

    fn fail(&mut self, now_ms: u64, why: &str) -> Step {
        let was_connected = self.is_connected();
        let delay = self.backoff_ms;
        self.backoff_ms = (self.backoff_ms * 2).min(MAX_BACKOFF_MS);
        self.phase = Phase::Down {
            retry_at_ms: now_ms.saturating_add(delay),
        };
        self.failures = self.failures.saturating_add(1);
        let log_it = self.failures == 1
            || now_ms.saturating_sub(self.failure_logged_ms) >= OUTAGE_LOG_INTERVAL_MS;
        if !log_it {
            return Step::default();
        }
        self.failure_logged_ms = now_ms;
        let state = if was_connected {
            "disconnected:".to_string()
        } else if self.failures == 1 {
            "etcd unreachable:".to_string()
        } else {
            format!("etcd still unreachable after {} attempts:", self.failures)
        };
        Step {
            transition: Some(format!(
                "fleet: {state} {why}; retrying every {MAX_BACKOFF_MS} ms at most"
            )),
            ..Step::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::Entry;
    use crate::fleet::etcd_api::{Event, KeyValue};
    use crate::fleet::record::{revocation_key, revocation_value};

    const PREFIX: &str = "/bcl/";

    fn kv(id: u64, mod_revision: i64) -> KeyValue {
        let entry = Entry {
            id,
            cutoff: 5,
            expires_at: 2_000_000_000,
        };
        KeyValue {
            key: revocation_key(PREFIX, &entry),
            create_revision: mod_revision,
            mod_revision,
            version: 1,
            value: revocation_value(&entry, 1),
            lease: 0,
        }
    }

    fn page(ids: &[u64], revision: i64, more: bool) -> RangeResponse {
        RangeResponse {
            revision,
            kvs: ids.iter().map(|id| kv(*id, 2)).collect(),
            more,
            count: ids.len() as i64,
        }
    }

    fn watch(events: Vec<Event>) -> WatchResponse {
        WatchResponse {
            revision: 0,
            watch_id: 0,
            created: false,
            canceled: false,
            compact_revision: 0,
            cancel_reason: String::new(),
            events,
        }
    }

    fn put(id: u64, revision: i64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: kv(id, revision),
        }
    }

    #[test]
    fn loads_every_page_at_one_revision_then_watches_from_the_next() {
        let mut sync = FleetSync::new(PREFIX, 2);
        let step = sync.on_tick(0);
        assert!(matches!(step.command, Some(Command::Range(_))));
        // The whole range does not fit one page: the rest is read slice by slice, starting
        // with the rest of the slice the first page ended in (ids 1 and 2: slice 0).
        let step = sync.on_range(&page(&[1, 2], 40, true), 5);
        assert_eq!(step.apply.len(), 2);
        let mut after = kv(2, 2).key;
        after.push(0);
        assert_eq!(
            step.command,
            Some(Command::Range(range_request(
                &after,
                &revocation_slice_end(PREFIX, 0),
                2,
                40
            )))
        );
        assert!(!sync.is_loaded());
        // Later pages carry their own header revision; the load's revision stays 40.
        let step = sync.on_range(&page(&[3], 45, false), 9);
        assert_eq!(step.apply.len(), 1);
        assert_eq!(
            step.command,
            Some(Command::Range(range_request(
                &revocation_slice_start(PREFIX, 1),
                &revocation_slice_end(PREFIX, 1),
                2,
                40
            )))
        );
        let mut ranges = 0;
        let step = loop {
            let step = sync.on_range(&page(&[], 46, false), 9);
            match step.command {
                Some(Command::Range(_)) => ranges += 1,
                _ => break step,
            }
        };
        assert_eq!(
            ranges,
            usize::from(REVOCATION_SLICES) - 2,
            "slices 1 to 254, then 255 ends it"
        );
        assert!(step.became_loaded);
        assert_eq!(sync.revision(), 40);
        assert_eq!(
            step.command,
            Some(Command::OpenWatch(watch_create_request(
                &revocations_key_start(PREFIX),
                &revocations_range_end(PREFIX),
                41,
                true
            )))
        );
        assert!(!sync.is_connected());
        let mut created = watch(vec![]);
        created.created = true;
        created.revision = 50;
        sync.on_watch(&created, 10);
        assert!(sync.is_connected());
        // `created` says nothing about events delivered: the revision stays.
        assert_eq!(sync.revision(), 40);
    }

    #[test]
    fn a_range_that_fits_one_page_is_the_whole_load() {
        let mut sync = FleetSync::new(PREFIX, 100);
        sync.on_tick(0);
        let step = sync.on_range(&page(&[1, 2, 3], 7, false), 1);
        assert!(step.became_loaded);
        assert!(matches!(step.command, Some(Command::OpenWatch(_))));
    }

    #[test]
    fn a_reconnect_resumes_after_the_last_applied_event() {
        let mut sync = FleetSync::new(PREFIX, 100);
        sync.on_tick(0);
        sync.on_range(&page(&[], 10, false), 1);
        let step = sync.on_watch(&watch(vec![put(1, 11), put(2, 12)]), 2);
        assert_eq!(step.apply.len(), 2);
        assert_eq!(sync.revision(), 12);
        let step = sync.on_stream_closed(13, 3);
        assert!(step.transition.is_some());
        assert!(!sync.is_connected());
        assert_eq!(sync.on_tick(50).command, None, "backs off first");
        let step = sync.on_tick(200);
        assert_eq!(
            step.command,
            Some(Command::OpenWatch(watch_create_request(
                &revocations_key_start(PREFIX),
                &revocations_range_end(PREFIX),
                13,
                true
            )))
        );
        assert!(sync.is_loaded(), "still loaded while reconnecting");
    }

    #[test]
    fn a_compacted_revision_reloads_everything() {
        let mut sync = FleetSync::new(PREFIX, 100);
        sync.on_tick(0);
        sync.on_range(&page(&[], 10, false), 1);
        let mut canceled = watch(vec![]);
        canceled.canceled = true;
        canceled.compact_revision = 30;
        let step = sync.on_watch(&canceled, 2);
        assert!(step.full_reload);
        assert!(matches!(step.command, Some(Command::Range(_))));
        assert!(sync.is_loaded());
        let step = sync.on_range(&page(&[4], 35, false), 3);
        assert!(!step.became_loaded, "loaded once already");
        assert_eq!(sync.revision(), 35);
    }

    #[test]
    fn foreign_records_are_skipped_and_deletes_ignored() {
        let mut sync = FleetSync::new(PREFIX, 100);
        sync.on_tick(0);
        sync.on_range(&page(&[], 1, false), 1);
        let mut bad = put(1, 2);
        bad.kv.value = b"junk".to_vec();
        let delete = Event {
            kind: EventKind::Delete,
            kv: kv(2, 3),
        };
        let step = sync.on_watch(&watch(vec![bad, delete, put(3, 4)]), 2);
        assert_eq!(step.skipped, 1);
        assert_eq!(step.apply.len(), 1);
        assert_eq!(sync.revision(), 4);
    }

    #[test]
    fn failures_back_off_up_to_a_second_and_an_outage_logs_once_a_minute() {
        let mut sync = FleetSync::new(PREFIX, 100);
        let mut now = 0;
        let mut logged = 0;
        for _ in 0..120 {
            let step = sync.on_tick(now);
            assert!(step.command.is_some());
            if sync.on_range_failed(14, now).transition.is_some() {
                logged += 1;
            }
            now += MAX_BACKOFF_MS;
        }
        assert_eq!(sync.backoff_ms, MAX_BACKOFF_MS);
        assert_eq!(logged, 2, "the first failure, and one a minute later");
    }
}
