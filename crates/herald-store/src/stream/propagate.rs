//! Stream changes as the commands that replay them exactly, for the append-only file.
//!
//! Consumer-group reads and claims depend on the clock (delivery times) and on what was
//! pending at that moment, so they are not logged as sent. Like Redis, Herald logs what
//! they did: every entry delivered or claimed as an `XCLAIM … TIME <ms> RETRYCOUNT <n>
//! FORCE JUSTID` that recreates its pending-entry record exactly, entries found deleted
//! as the `XACK` that dropped them, and the group's new position as `XGROUP SETID …
//! ENTRIESREAD`. A rewrite describes a whole stream the same way.

use bytes::Bytes;

use super::id::StreamId;
use super::Stream;

fn word(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn id_word(id: StreamId) -> Bytes {
    word(&id.to_string())
}

/// `XGROUP CREATECONSUMER` when `consumer` exists in the group (it may have been created
/// by this command), then `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID` for each of `ids`
/// still pending in `group`, `XACK key group id` for each that is not (deleted while
/// pending, or read with NOACK: the ACK is then a no-op), then the group's position.
/// Empty when the group is gone.
pub fn group_records(
    stream: &Stream,
    key: &Bytes,
    group_name: &[u8],
    consumer: Option<&Bytes>,
    ids: &[StreamId],
) -> Vec<Vec<Bytes>> {
    let Some(group) = stream.groups.get(group_name) else {
        return Vec::new();
    };
    let group_name = Bytes::copy_from_slice(group_name);
    let mut records = Vec::with_capacity(ids.len() + 2);
    // Only a consumer that exists now: XCLAIM and XAUTOCLAIM create theirs lazily.
    if let Some(consumer) = consumer.filter(|name| group.consumers.contains_key(*name)) {
        records.push(vec![
            word("XGROUP"),
            word("CREATECONSUMER"),
            key.clone(),
            group_name.clone(),
            consumer.clone(),
        ]);
    }
    for id in ids {
        match group.pel.get(id) {
            Some(pending) => records.push(claim_record(
                key,
                &group_name,
                &pending.consumer,
                *id,
                pending.delivered_ms,
                pending.deliveries,
            )),
            None => records.push(vec![
                word("XACK"),
                key.clone(),
                group_name.clone(),
                id_word(*id),
            ]),
        }
    }
    records.push(set_id_record(
        key,
        &group_name,
        group.last_id,
        group.entries_read,
    ));
    records
}

fn claim_record(
    key: &Bytes,
    group: &Bytes,
    consumer: &Bytes,
    id: StreamId,
    delivered_ms: u64,
    deliveries: u64,
) -> Vec<Bytes> {
    vec![
        word("XCLAIM"),
        key.clone(),
        group.clone(),
        consumer.clone(),
        word("0"),
        id_word(id),
        word("TIME"),
        word(&delivered_ms.to_string()),
        word("RETRYCOUNT"),
        word(&deliveries.to_string()),
        word("FORCE"),
        word("JUSTID"),
    ]
}

fn set_id_record(
    key: &Bytes,
    group: &Bytes,
    last: StreamId,
    entries_read: Option<u64>,
) -> Vec<Bytes> {
    let mut record = vec![
        word("XGROUP"),
        word("SETID"),
        key.clone(),
        group.clone(),
        id_word(last),
    ];
    if let Some(read) = entries_read {
        record.extend([word("ENTRIESREAD"), word(&read.to_string())]);
    }
    record
}

/// After a trim removed entries: the exact trim with the same outcome (`MINID =` the new
/// first entry, or `MAXLEN = 0` when none is left), whatever approximation produced it.
pub fn exact_trim_record(stream: &Stream, key: &Bytes) -> Vec<Bytes> {
    if stream.is_empty() {
        vec![
            word("XTRIM"),
            key.clone(),
            word("MAXLEN"),
            word("="),
            word("0"),
        ]
    } else {
        vec![
            word("XTRIM"),
            key.clone(),
            word("MINID"),
            word("="),
            id_word(stream.first_id()),
        ]
    }
}

/// Name of the group a rewrite creates and destroys to make an empty stream.
const EMPTY_STREAM_GROUP: &str = "herald-rewrite-empty-stream";

/// The commands that rebuild `stream` under `key`: entries, counters, groups,
/// consumers and pending entries.
pub fn rebuild_records(stream: &Stream, key: &Bytes) -> Vec<Vec<Bytes>> {
    let mut records = Vec::new();
    let entries = stream.range(StreamId::MIN, StreamId::MAX, None, false);
    if entries.is_empty() {
        for action in ["CREATE", "DESTROY"] {
            let mut record = vec![
                word("XGROUP"),
                word(action),
                key.clone(),
                word(EMPTY_STREAM_GROUP),
            ];
            if action == "CREATE" {
                record.extend([word("0"), word("MKSTREAM")]);
            }
            records.push(record);
        }
    }
    for entry in entries {
        let mut record = Vec::with_capacity(entry.fields.len() + 3);
        record.extend([word("XADD"), key.clone(), id_word(entry.id)]);
        record.extend(entry.fields);
        records.push(record);
    }
    records.push(vec![
        word("XSETID"),
        key.clone(),
        id_word(stream.last_id()),
        word("ENTRIESADDED"),
        word(&stream.entries_added().to_string()),
        word("MAXDELETEDID"),
        id_word(stream.max_deleted_id()),
    ]);
    for (name, group) in &stream.groups {
        let mut create = vec![
            word("XGROUP"),
            word("CREATE"),
            key.clone(),
            name.clone(),
            id_word(group.last_id),
        ];
        if let Some(read) = group.entries_read {
            create.extend([word("ENTRIESREAD"), word(&read.to_string())]);
        }
        records.push(create);
        for consumer in group.consumers.keys() {
            records.push(vec![
                word("XGROUP"),
                word("CREATECONSUMER"),
                key.clone(),
                name.clone(),
                consumer.clone(),
            ]);
        }
        for (id, pending) in &group.pel {
            records.push(claim_record(
                key,
                name,
                &pending.consumer,
                *id,
                pending.delivered_ms,
                pending.deliveries,
            ));
        }
    }
    records
}
