//! Pending entries of consumer groups: XPENDING (summary and extended form), XCLAIM and
//! XAUTOCLAIM. A claimed entry whose stream entry was deleted is dropped from the PEL, as
//! Redis 7 does; a consumer is created only once it claims something.

use bytes::Bytes;

use super::consume::{no_key_or_group, Delivered};
use super::id::StreamId;
use super::ops::stream_mut;
use super::{Group, Pending};
use crate::db::Db;
use crate::error::StoreError;
use crate::events;

/// XPENDING's summary form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingSummary {
    /// Pending entries.
    pub count: usize,
    /// Smallest and largest pending IDs.
    pub bounds: Option<(StreamId, StreamId)>,
    /// Consumers holding entries, with how many.
    pub consumers: Vec<(Bytes, usize)>,
}

fn group_ref<'a>(
    db: &'a mut Db,
    key: &[u8],
    group: &[u8],
    now_ms: u64,
) -> Result<&'a mut Group, StoreError> {
    stream_mut(db, key, now_ms)?
        .and_then(|stream| stream.groups.get_mut(group))
        .ok_or_else(|| no_key_or_group(key, group))
}

/// XPENDING key group.
pub fn pending_summary(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    now_ms: u64,
) -> Result<PendingSummary, StoreError> {
    let found = group_ref(db, key, group, now_ms)?;
    let bounds = found
        .pel
        .first_key_value()
        .zip(found.pel.last_key_value())
        .map(|((first, _), (last, _))| (*first, *last));
    Ok(PendingSummary {
        count: found.pel.len(),
        bounds,
        consumers: found
            .consumers
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(name, c)| (name.clone(), c.pending.len()))
            .collect(),
    })
}

/// XPENDING's extended form: what to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingQuery {
    /// Smallest ID.
    pub start: StreamId,
    /// Largest ID.
    pub end: StreamId,
    /// Most entries.
    pub count: usize,
    /// Only entries idle at least this long.
    pub min_idle_ms: u64,
    /// Only this consumer's entries.
    pub consumer: Option<Bytes>,
}

/// `XPENDING key group [IDLE ms] start end count [consumer]`: `(id, pending)` pairs.
pub fn pending_range(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    query: &PendingQuery,
    now_ms: u64,
) -> Result<Vec<(StreamId, Pending)>, StoreError> {
    let found = group_ref(db, key, group, now_ms)?;
    if query.start > query.end {
        return Ok(Vec::new());
    }
    let idle_enough = |p: &Pending| now_ms.saturating_sub(p.delivered_ms) >= query.min_idle_ms;
    let out = match &query.consumer {
        None => found
            .pel
            .range(query.start..=query.end)
            .filter(|(_, p)| idle_enough(p))
            .take(query.count)
            .map(|(id, p)| (*id, p.clone()))
            .collect(),
        Some(consumer) => match found.consumers.get(consumer) {
            None => Vec::new(),
            Some(c) => c
                .pending
                .range(query.start..=query.end)
                .filter_map(|id| found.pel.get(id).map(|p| (*id, p)))
                .filter(|(_, p)| idle_enough(p))
                .take(query.count)
                .map(|(id, p)| (id, p.clone()))
                .collect(),
        },
    };
    Ok(out)
}

/// XCLAIM's options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimOptions {
    /// Only entries idle at least this long.
    pub min_idle_ms: u64,
    /// The delivery time to set (IDLE/TIME), clamped to now; `None`: now.
    pub delivered_ms: Option<u64>,
    /// RETRYCOUNT.
    pub retry_count: Option<u64>,
    /// FORCE: create PEL entries for unpending IDs that exist in the stream.
    pub force: bool,
    /// JUSTID: return IDs only, do not count a delivery.
    pub just_id: bool,
    /// LASTID: move the group's last ID up to this.
    pub last_id: Option<StreamId>,
}

fn claim_one(
    found: &mut Group,
    id: StreamId,
    consumer: &Bytes,
    delivered_ms: u64,
    retry_count: Option<u64>,
    just_id: bool,
) {
    let deliveries = found.pel.get(&id).map_or(1, |p| p.deliveries);
    let deliveries = match retry_count {
        Some(n) => n,
        None if !just_id => deliveries + 1,
        None => deliveries,
    };
    found.claim(id, consumer, delivered_ms, deliveries);
}

/// XCLAIM: the claimed entries (fields `None` with JUSTID). Pending IDs whose entries
/// were deleted are dropped from the PEL and not returned.
pub fn claim(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    consumer: &Bytes,
    ids: &[StreamId],
    options: &ClaimOptions,
    now_ms: u64,
) -> Result<Vec<Delivered>, StoreError> {
    let stream = stream_mut(db, key, now_ms)?.ok_or_else(|| no_key_or_group(key, group))?;
    let mut found = stream
        .groups
        .remove(group)
        .ok_or_else(|| no_key_or_group(key, group))?;
    // As in Redis, the consumer is created only once it claims something.
    let mut created = false;
    if let Some(last) = options.last_id {
        if last > found.last_id {
            found.last_id = last;
        }
    }
    let delivered_ms = options.delivered_ms.map_or(now_ms, |at| at.min(now_ms));
    let mut out = Vec::new();
    for &id in ids {
        let entry = stream.entries().get(id);
        let Some(entry) = entry else {
            found.ack(id);
            continue;
        };
        let pending = found.pel.get(&id).cloned();
        match pending {
            None if !options.force => continue,
            None => {}
            Some(p) if now_ms.saturating_sub(p.delivered_ms) < options.min_idle_ms => continue,
            Some(_) => {}
        }
        let (holder, new) = found.consumer_or_create(consumer, now_ms);
        holder.seen_ms = now_ms;
        created |= new;
        if pending.is_none() {
            found.pel.insert(
                id,
                Pending {
                    consumer: consumer.clone(),
                    delivered_ms: now_ms,
                    deliveries: 1,
                },
            );
        }
        claim_one(
            &mut found,
            id,
            consumer,
            delivered_ms,
            options.retry_count,
            options.just_id,
        );
        out.push((id, (!options.just_id).then_some(entry.fields)));
    }
    if !out.is_empty() {
        if let Some(holder) = found.consumers.get_mut(consumer) {
            holder.active_ms = Some(now_ms);
        }
    }
    stream.groups.insert(Bytes::copy_from_slice(group), found);
    if created {
        db.notify(events::STREAM, "xgroup-createconsumer", key);
    }
    Ok(out)
}

/// What XAUTOCLAIM returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoClaimed {
    /// Where the next call should start (`0-0`: the scan is complete).
    pub next: StreamId,
    /// The claimed entries (fields `None` with JUSTID).
    pub claimed: Vec<Delivered>,
    /// Pending IDs whose entries no longer exist; dropped from the PEL.
    pub deleted: Vec<StreamId>,
}

/// XAUTOCLAIM: scans the PEL from `start`, claiming up to `count` entries idle at least
/// `min_idle_ms`, looking at no more than `count * 10` entries.
#[allow(clippy::too_many_arguments)]
pub fn auto_claim(
    db: &mut Db,
    key: &[u8],
    group: &[u8],
    consumer: &Bytes,
    min_idle_ms: u64,
    start: StreamId,
    count: usize,
    just_id: bool,
    now_ms: u64,
) -> Result<AutoClaimed, StoreError> {
    let stream = stream_mut(db, key, now_ms)?.ok_or_else(|| no_key_or_group(key, group))?;
    let mut found = stream
        .groups
        .remove(group)
        .ok_or_else(|| no_key_or_group(key, group))?;
    let mut created = false;
    let mut attempts = count.saturating_mul(10);
    let mut remaining = count;
    let mut result = AutoClaimed::default();
    let mut cursor = Some(start);
    while let Some(from) = cursor {
        if attempts == 0 || remaining == 0 {
            break;
        }
        let Some((&id, pending)) = found.pel.range(from..).next() else {
            cursor = None;
            break;
        };
        cursor = id.successor();
        attempts -= 1;
        if now_ms.saturating_sub(pending.delivered_ms) < min_idle_ms {
            continue;
        }
        let Some(entry) = stream.entries().get(id) else {
            found.ack(id);
            result.deleted.push(id);
            continue;
        };
        let (holder, new) = found.consumer_or_create(consumer, now_ms);
        holder.seen_ms = now_ms;
        created |= new;
        claim_one(&mut found, id, consumer, now_ms, None, just_id);
        result
            .claimed
            .push((id, (!just_id).then_some(entry.fields)));
        remaining -= 1;
    }
    result.next = cursor
        .and_then(|from| found.pel.range(from..).next().map(|(id, _)| *id))
        .unwrap_or(StreamId::MIN);
    if !result.claimed.is_empty() {
        if let Some(holder) = found.consumers.get_mut(consumer) {
            holder.active_ms = Some(now_ms);
        }
    }
    stream.groups.insert(Bytes::copy_from_slice(group), found);
    if created {
        db.notify(events::STREAM, "xgroup-createconsumer", key);
    }
    Ok(result)
}
