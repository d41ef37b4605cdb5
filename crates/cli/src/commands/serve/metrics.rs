//! What `/metrics` reports, in Prometheus's text format (the Prometheus
//! project's `prometheus-client`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::catalog::Served;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    export: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExportLabels {
    plugin: String,
    export: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    status: u16,
}

type Hist = Family<ExportLabels, Histogram, fn() -> Histogram>;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Hist,
    in_flight: Gauge,
    responses: Family<ResponseLabels, Counter>,
    plugins: Family<PluginLabels, Gauge>,
    idle_instances: Family<PluginLabels, Gauge>,
    instantiations: Family<PluginLabels, Gauge<u64, AtomicU64>>,
    outbox_queued: Gauge,
    refused_overload: Counter,
    db_pool: Family<PoolLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("plinth");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin calls over HTTP, by plugin, export and outcome (ok, error: the export's own error result, bad-request, timed-out, memory-limit, row-limit, trap, internal)",
            calls.clone(),
        );
        let latency: Hist = Family::new_with_constructor(latency_histogram);
        registry.register(
            "plugin_call_duration_seconds",
            "Time from the call's start to its result, by plugin and export",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "plugin_calls_in_flight",
            "Plugin calls running now",
            in_flight.clone(),
        );
        let responses = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses, by status",
            responses.clone(),
        );
        let plugins = Family::<PluginLabels, Gauge>::default();
        registry.register("plugins_loaded", "Plugins served (1 each)", plugins.clone());
        let idle_instances = Family::<PluginLabels, Gauge>::default();
        registry.register(
            "plugin_idle_instances",
            "Live instances waiting for a call (plugins that reuse instances)",
            idle_instances.clone(),
        );
        let instantiations = Family::<PluginLabels, Gauge<u64, AtomicU64>>::default();
        registry.register(
            "plugin_instantiations",
            "Instances each plugin has made since it was loaded",
            instantiations.clone(),
        );
        let outbox_queued = Gauge::default();
        registry.register(
            "outbox_queued",
            "Mail waiting in the outbox (due now or later), as of the last mail pass",
            outbox_queued.clone(),
        );
        let refused_overload = Counter::default();
        registry.register(
            "overload_refusals",
            "Requests answered 503 because the limit of calls in flight was reached",
            refused_overload.clone(),
        );
        let db_pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "The database connections kept for units of work, by state: idle, open (idle and in use; SQLite: idle only), max, waiting (units waiting for one)",
            db_pool.clone(),
        );
        Self {
            db_pool,
            registry,
            calls,
            latency,
            in_flight,
            responses,
            plugins,
            idle_instances,
            instantiations,
            outbox_queued,
            refused_overload,
        }
    }

    /// A call began; the guard counts it in flight until dropped.
    pub fn call_started(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// A call ended.
    pub fn call_ended(&self, plugin: &str, export: &str, outcome: &'static str, seconds: f64) {
        let labels = ExportLabels {
            plugin: plugin.to_string(),
            export: export.to_string(),
        };
        self.latency.get_or_create(&labels).observe(seconds);
        self.calls
            .get_or_create(&CallLabels {
                plugin: labels.plugin,
                export: labels.export,
                outcome,
            })
            .inc();
    }

    /// A response was sent.
    pub fn responded(&self, status: u16) {
        self.responses
            .get_or_create(&ResponseLabels { status })
            .inc();
    }

    /// A request was refused for want of a call slot.
    pub fn overloaded(&self) {
        self.refused_overload.inc();
    }

    /// The plugins served now.
    pub fn observe_plugins(&self, served: &HashMap<String, Arc<Served>>) {
        self.plugins.clear();
        for name in served.keys() {
            self.plugins
                .get_or_create(&PluginLabels {
                    plugin: name.clone(),
                })
                .set(1);
        }
    }

    /// The outbox's depth, read now.
    pub fn observe_outbox(&self, db: &plinth_store::Db) {
        match db.mail_queued() {
            Ok(n) => {
                self.outbox_queued.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            Err(e) => tracing::warn!(error = %e, "cannot count the outbox"),
        }
    }

    /// The text exposition, with the instance and pool gauges read now.
    pub fn encode(&self, served: &HashMap<String, Arc<Served>>, db: &plinth_store::Db) -> String {
        let pool = db.pool_status();
        for (state, n) in [
            ("idle", pool.idle),
            ("open", pool.open),
            ("max", pool.max),
            ("waiting", pool.waiting),
        ] {
            self.db_pool
                .get_or_create(&PoolLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (name, s) in served {
            let labels = PluginLabels {
                plugin: name.clone(),
            };
            self.idle_instances
                .get_or_create(&labels)
                .set(i64::try_from(s.plugin.idle_instances()).unwrap_or(i64::MAX));
            self.instantiations
                .get_or_create(&labels)
                .set(s.plugin.instantiations());
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// Counts a call in flight until dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
