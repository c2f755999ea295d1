//! `GET /metrics`: Prometheus text format (0.0.4), rendered with `prometheus-client` from
//! counter snapshots taken at scrape time.
//!
//! Names follow `herald_<subsystem>_<thing>_<unit>`; counters end in `_total`. Labels are
//! bounded sets only: `transport` (resp, ws, sse), `kind`, `command` (the command table),
//! `code` (auth error codes). Never a channel, pattern or client id: their number is
//! unbounded, and per-channel figures belong on a dashboard.
//!
//! The RESP side reaches this module through [`RespStats`], which the binary implements
//! over the RESP server's counters, so this crate needs no dependency on it.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::hub::{Hub, Transport};

/// What /metrics shows of the RESP server, read at each scrape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RespSnapshot {
    /// Clients connected now.
    pub connections: u64,
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections refused by `maxclients`.
    pub connections_rejected: u64,
    /// Bytes read from clients.
    pub received_bytes: u64,
    /// Bytes written to clients.
    pub sent_bytes: u64,
    /// Messages written to RESP subscribers.
    pub delivered: u64,
    /// Clients closed for exceeding an output-buffer limit.
    pub slow_consumer_disconnects: u64,
    /// Channel subscriptions held by RESP clients (shard channels included).
    pub channel_subscriptions: u64,
    /// Pattern subscriptions held by RESP clients.
    pub pattern_subscriptions: u64,
    /// Calls per command name (a bounded set: the command table plus `unknown`).
    pub commands: Vec<(&'static str, u64)>,
}

/// A subscriber with output waiting to be written: the dashboard's slow-consumer table
/// (never a metric: client ids are unbounded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// `resp`, `ws` or `sse`.
    pub transport: &'static str,
    /// The client id (CLIENT ID for RESP clients).
    pub client: u64,
    /// The peer address, when known.
    pub peer: Option<String>,
    /// The client's name (CLIENT SETNAME), when set.
    pub name: Option<String>,
    /// Bytes queued for the client and not yet written.
    pub queued_bytes: u64,
}

impl Backlog {
    /// Sorts `rows` most-queued first (then by id) and keeps `limit`.
    pub fn keep_largest(rows: &mut Vec<Backlog>, limit: usize) {
        rows.sort_by(|a, b| {
            b.queued_bytes
                .cmp(&a.queued_bytes)
                .then(a.client.cmp(&b.client))
        });
        rows.truncate(limit);
    }
}

/// The RESP server's counters, as the binary exposes them to the gateway.
pub trait RespStats: Send + Sync + 'static {
    /// A snapshot, taken once per scrape.
    fn snapshot(&self) -> RespSnapshot;

    /// The `limit` RESP clients with the most output waiting, most first (none with
    /// nothing waiting).
    fn backlog(&self, _limit: usize) -> Vec<Backlog> {
        Vec::new()
    }
}

/// Renders the registry; shared by the /metrics route.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
}

impl Exporter {
    /// An exporter of `hub`'s (and its RESP side's) counters.
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshots { hub }));
        Arc::new(Exporter { registry })
    }

    /// The text exposition.
    pub fn text(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry).is_err()
        {
            tracing::warn!("cannot encode metrics");
        }
        text
    }

    /// The /metrics response.
    pub fn render(&self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            self.text(),
        )
            .into_response()
    }
}

#[derive(Debug)]
struct Snapshots {
    hub: Arc<Hub>,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: usize,
) -> Result<(), std::fmt::Error> {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(family)
}

fn as_gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for Snapshots {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let hub = &self.hub;
        let engine = hub.engine.stats();
        let resp = hub.resp.as_ref().map(|resp| resp.snapshot());
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        let load_gauge = |gauge: &std::sync::atomic::AtomicI64| {
            gauge.load(std::sync::atomic::Ordering::Relaxed).max(0)
        };
        let transport = |t: Transport| vec![("transport", t.label())];
        let resp_label = || vec![("transport", "resp")];

        // One sample per transport: RESP (when wired) first, then the gateway's.
        let per_transport_counter = |resp_value: Option<u64>,
                                     pick: &dyn Fn(&crate::hub::TransportStats) -> u64|
         -> Vec<(Labels<'static>, u64)> {
            resp_value
                .map(|value| (resp_label(), value))
                .into_iter()
                .chain(
                    Transport::ALL
                        .iter()
                        .map(|&t| (transport(t), pick(hub.stats.of(t)))),
                )
                .collect()
        };

        let connections: Vec<(Labels<'static>, i64)> = resp
            .as_ref()
            .map(|resp| (resp_label(), as_gauge(resp.connections)))
            .into_iter()
            .chain(
                Transport::ALL
                    .iter()
                    .map(|&t| (transport(t), load_gauge(&hub.stats.of(t).connections))),
            )
            .collect();
        gauges(
            &mut encoder,
            "herald_net_connections",
            "Client connections open now, by transport",
            &connections,
        )?;
        counters(
            &mut encoder,
            "herald_net_connections_accepted",
            "Client connections accepted since start",
            &per_transport_counter(resp.as_ref().map(|r| r.connections_accepted), &|s| {
                load(&s.accepted)
            }),
        )?;
        counters(
            &mut encoder,
            "herald_net_connections_rejected",
            "Client connections refused by the connection limit",
            &per_transport_counter(resp.as_ref().map(|r| r.connections_rejected), &|s| {
                load(&s.rejected)
            }),
        )?;
        counters(
            &mut encoder,
            "herald_net_received_bytes",
            "Bytes received from clients (WebSocket: message payloads)",
            &per_transport_counter(resp.as_ref().map(|r| r.received_bytes), &|s| {
                load(&s.bytes_in)
            }),
        )?;
        counters(
            &mut encoder,
            "herald_net_sent_bytes",
            "Bytes sent to clients (WebSocket and SSE: frame and event payloads)",
            &per_transport_counter(resp.as_ref().map(|r| r.sent_bytes), &|s| load(&s.bytes_out)),
        )?;
        gauge(
            &mut encoder,
            "herald_pubsub_channels",
            "Channels with at least one subscriber",
            engine.channels,
        )?;
        gauge(
            &mut encoder,
            "herald_pubsub_shard_channels",
            "Shard channels with at least one subscriber",
            engine.shard_channels,
        )?;
        gauge(
            &mut encoder,
            "herald_pubsub_patterns",
            "Distinct patterns with at least one subscriber",
            engine.patterns,
        )?;
        let mut subscriptions: Vec<(Labels<'static>, i64)> = Vec::new();
        if let Some(resp) = &resp {
            subscriptions.push((
                vec![("transport", "resp"), ("kind", "channel")],
                as_gauge(resp.channel_subscriptions),
            ));
            subscriptions.push((
                vec![("transport", "resp"), ("kind", "pattern")],
                as_gauge(resp.pattern_subscriptions),
            ));
        }
        for t in Transport::ALL {
            let stats = hub.stats.of(t);
            subscriptions.push((
                vec![("transport", t.label()), ("kind", "channel")],
                load_gauge(&stats.channel_subscriptions),
            ));
            subscriptions.push((
                vec![("transport", t.label()), ("kind", "pattern")],
                load_gauge(&stats.pattern_subscriptions),
            ));
        }
        gauges(
            &mut encoder,
            "herald_pubsub_subscriptions",
            "Subscriptions held now, by transport and kind",
            &subscriptions,
        )?;
        counters(
            &mut encoder,
            "herald_pubsub_messages_published",
            "Messages published, by any front-end",
            &[(Vec::new(), engine.messages_published)],
        )?;
        counters(
            &mut encoder,
            "herald_pubsub_messages_delivered",
            "Messages written to subscribers, by transport",
            &per_transport_counter(resp.as_ref().map(|r| r.delivered), &|s| load(&s.delivered)),
        )?;
        counters(
            &mut encoder,
            "herald_pubsub_slow_consumer_disconnects",
            "Subscribers disconnected for exceeding their output budget, by transport",
            &per_transport_counter(resp.as_ref().map(|r| r.slow_consumer_disconnects), &|s| {
                load(&s.slow_consumers)
            }),
        )?;
        counters(
            &mut encoder,
            "herald_gateway_messages_published",
            "Messages published through the gateway (WebSocket and HTTP)",
            &[(Vec::new(), load(&hub.stats.published))],
        )?;
        let mut failures: Vec<(&'static str, u64)> = hub
            .stats
            .auth_failures
            .lock()
            .iter()
            .map(|(code, count)| (*code, *count))
            .collect();
        failures.sort();
        let failures: Vec<(Labels<'static>, u64)> = failures
            .into_iter()
            .map(|(code, count)| (vec![("code", code)], count))
            .collect();
        counters(
            &mut encoder,
            "herald_gateway_auth_failures",
            "Gateway requests refused for a missing or invalid token, by error code",
            &failures,
        )?;
        if let Some(resp) = &resp {
            let commands: Vec<(Labels<'static>, u64)> = resp
                .commands
                .iter()
                .map(|(name, calls)| (vec![("command", *name)], *calls))
                .collect();
            counters(
                &mut encoder,
                "herald_server_commands",
                "RESP commands called, by command (subcommands under their container)",
                &commands,
            )?;
        }
        Ok(())
    }
}
