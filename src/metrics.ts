// Prometheus metrics (prom-client): process defaults plus the gateway's counters. Shard figures
// are collected over the control plane when /metrics is scraped, never on the hot path.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { OutcomeHistogram } from './outcome-histogram.js';
import { histogramSeries, type LatencySnapshot, type SeriesValue } from '../actors/latency-stats.js';

import type { ShardStats } from '../actors/shard.js';
import type { TransportStats } from '../actors/transport.js';

/** Figures read at scrape from parts other than the shards. */
export interface MetricSources {
  /** the gateway thread's transport (to and from the shards, and other nodes in a cluster) */
  gatewayTransport(): TransportStats;
  /** LMDB write transactions committed in the data directory since it was created */
  storageTransactions(): number;
}

export class Metrics {
  readonly registry = new Registry();
  /** Plain numbers on the hot path; prom-client reads them only when /metrics is scraped. */
  readonly counts = {
    connections: 0, framesIn: 0, framesOut: 0, slowConsumerPauses: 0,
    /** channel posts published to this gateway's topics, and frames written to SSE viewers */
    channelPublishes: 0, channelDeliveries: 0, sseViewers: 0, sseEventsOut: 0, sseDisconnects: 0, channelLagPauses: 0,
    /** media: uploads made ready, uploads refused for a size or hash mismatch, bytes in and out, media deleted */
    mediaUploads: 0, mediaUploadsRejected: 0, mediaBytesIn: 0, mediaBytesOut: 0, mediaCollected: 0,
  };

  /** WebSocket commands routed to actors, by command and result (ok or the error code), and their latency */
  readonly commands: OutcomeHistogram;
  /** HTTP answers by route pattern and status, and their latency (JSON answers; streams are not timed) */
  readonly http: OutcomeHistogram;
  /** push notifications: each provider attempt by outcome, and jobs dropped unsent by reason */
  readonly pushAttempts: Counter<'provider' | 'outcome'>;
  readonly pushDropped: Counter<'reason'>;
  /** event webhook POSTs by outcome (ok, http_error, network, timeout), and pre-send hook calls by outcome */
  readonly webhookDeliveries: Counter<'outcome'>;
  readonly sendHookCalls: Counter<'outcome'>;

  constructor(
    shardStats: () => Promise<ShardStats[]>,
    supervision: () => { restarts: number; lastRestartMs: number },
    askLatency: () => { shard: number; latency: LatencySnapshot }[] = () => [],
    sources?: MetricSources,
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: 'parley_' });
    const registry = this.registry;
    const counts = this.counts;
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name, help, registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    this.commands = new OutcomeHistogram(registry, {
      countName: 'parley_commands_total', countHelp: 'WebSocket commands answered by an actor, by command and result (ok or the error code)',
      secondsName: 'parley_command_seconds', secondsHelp: 'time from a command\'s arrival to its answer being written (output commit included)',
      keyLabel: 'command', resultLabel: 'result',
    });
    this.http = new OutcomeHistogram(registry, {
      countName: 'parley_http_requests_total', countHelp: 'HTTP answers by route pattern and status',
      secondsName: 'parley_http_request_seconds', secondsHelp: 'time from an HTTP request to its answer',
      keyLabel: 'route', resultLabel: 'status',
    });
    this.pushAttempts = new Counter({ name: 'parley_push_attempts_total', help: 'push deliveries tried, by provider and outcome (ok, retry, gone, failed)', labelNames: ['provider', 'outcome'], registers: [registry] });
    this.pushDropped = new Counter({ name: 'parley_push_dropped_total', help: 'push notifications dropped unsent, by reason (online, read, muted, capped, unregistered, unconfigured, attempts)', labelNames: ['reason'], registers: [registry] });
    this.webhookDeliveries = new Counter({ name: 'parley_webhook_deliveries_total', help: 'event webhook POSTs by outcome (ok, http_error, network, timeout); a failed one is retried with the same events', labelNames: ['outcome'], registers: [registry] });
    this.sendHookCalls = new Counter({ name: 'parley_send_hook_calls_total', help: 'pre-send hook calls by outcome (accept, reject, rewrite, error, timeout, busy)', labelNames: ['outcome'], registers: [registry] });
    new Gauge({ name: 'parley_connections', help: 'open WebSocket connections', registers: [registry], collect() { this.set(counts.connections); } });
    counter('parley_frames_in_total', 'WebSocket frames received', () => counts.framesIn);
    counter('parley_frames_out_total', 'WebSocket frames sent', () => counts.framesOut);
    new Gauge({ name: 'parley_sse_viewers', help: 'open Server-Sent Events streams', registers: [registry], collect() { this.set(counts.sseViewers); } });
    counter('parley_channel_publishes_total', 'channel posts published to this gateway\'s subscribers', () => counts.channelPublishes);
    counter('parley_channel_deliveries_total', 'channel posts published to subscriber sockets (posts × the topic\'s sockets; not in parley_frames_out_total)', () => counts.channelDeliveries);
    counter('parley_sse_events_out_total', 'channel posts written to SSE viewers', () => counts.sseEventsOut);
    counter('parley_sse_slow_disconnects_total', 'SSE viewers disconnected for falling too far behind', () => counts.sseDisconnects);
    counter('parley_channel_lag_pauses_total', 'times a channel subscriber socket stopped getting live posts for a full send buffer', () => counts.channelLagPauses);
    counter('parley_media_uploads_total', 'media uploads whose bytes matched their size and sha256', () => counts.mediaUploads);
    counter('parley_media_uploads_rejected_total', 'media uploads refused for a size or sha256 mismatch', () => counts.mediaUploadsRejected);
    counter('parley_media_bytes_in_total', 'media bytes received by uploads', () => counts.mediaBytesIn);
    counter('parley_media_bytes_out_total', 'media bytes served by downloads through this server', () => counts.mediaBytesOut);
    counter('parley_media_collected_total', 'media deleted: never attached, or no longer carried by a retained message', () => counts.mediaCollected);
    counter('parley_slow_consumer_pauses_total', 'times a socket was paused for a full send buffer', () => counts.slowConsumerPauses);
    const actors = new Gauge({
      name: 'parley_actors', help: 'active actor activations', labelNames: ['shard', 'kind'], registers: [registry],
      async collect() {
        for (const s of await shardStats()) {
          for (const [kind, n] of Object.entries(s.actors)) this.set({ shard: String(s.shard), kind }, n);
        }
      },
    });
    const registrations = (name: string, help: string, pick: (s: ShardStats) => number) =>
      new Gauge({
        name, help, registers: [registry],
        async collect() {
          this.set((await shardStats()).reduce((sum, s) => sum + pick(s), 0));
        },
      });
    counter('parley_shard_restarts_total', 'shard workers that died and were restarted', () => supervision().restarts);
    new Gauge({
      name: 'parley_shard_last_restart_seconds', help: 'time the last shard restart took, from its death to ready', registers: [registry],
      collect() { this.set(supervision().lastRestartMs / 1000); },
    });
    const perShard = (name: string, help: string, pick: (s: ShardStats) => number) =>
      new Gauge({
        name, help, labelNames: ['shard'], registers: [registry],
        async collect() {
          for (const s of await shardStats()) this.set({ shard: String(s.shard) }, pick(s));
        },
      });
    perShard('parley_commit_backlog', 'commit groups waiting for the disk', (s) => s.pendingOutputGroups);
    perShard('parley_commit_held_outputs', 'replies, pushes and tells held until their commit', (s) => s.heldOutputs);
    // Commit latency (seal → committed, or flushed with fsync) and batch sizes per shard, from the
    // shards' plain counters: a histogram and a counter built at scrape.
    latencyHistogram(registry, 'parley_commit_seconds', 'a commit group from seal to durable (committed; with DURABILITY=fsync, flushed), per shard',
      async () => (await shardStats()).map((s) => ({ shard: s.shard, latency: s.commit.latency })));
    latencyHistogram(registry, 'parley_ask_seconds', 'requests from the gateway to a shard\'s actors, from sending to the answer, per shard', async () => askLatency());
    new Counter({
      name: 'parley_commit_outputs_total', help: 'outputs (replies, pushes, tells) released by commits, per shard: ÷ commits = the batch size',
      labelNames: ['shard'], registers: [registry],
      async collect() {
        this.reset();
        for (const s of await shardStats()) this.inc({ shard: String(s.shard) }, s.commit.outputs);
      },
    });
    const shardTotal = (name: string, help: string, pick: (s: ShardStats) => number) =>
      new Counter({
        name, help, registers: [registry],
        async collect() {
          this.reset();
          this.inc((await shardStats()).reduce((sum, s) => sum + pick(s), 0));
        },
      });
    // Batches between threads and what they carry: envelopes ÷ batches is how well a tick
    // coalesces (small batches mean each message pays a thread hop and a commit of its own).
    const transportTotal = (name: string, help: string, pick: (t: TransportStats, direction: 'in' | 'out') => number) =>
      new Counter({
        name, help, labelNames: ['thread', 'direction'], registers: [registry],
        async collect() {
          this.reset();
          const threads: [string, TransportStats][] = (await shardStats()).map((s) => [String(s.shard), s.transport]);
          if (sources) threads.push(['gateway', sources.gatewayTransport()]);
          for (const [thread, t] of threads) {
            for (const direction of ['in', 'out'] as const) this.inc({ thread, direction }, pick(t, direction));
          }
        },
      });
    transportTotal('parley_transport_batches_total', 'batches a thread sent (out) and received (in), by thread (a shard\'s number, or gateway)',
      (t, d) => (d === 'in' ? t.batchesIn : t.batchesOut));
    transportTotal('parley_transport_envelopes_total', 'envelopes (tells, asks, replies) in those batches: ÷ the batches = the batch size',
      (t, d) => (d === 'in' ? t.envelopesIn : t.envelopesOut));
    if (sources) counter('parley_storage_transactions_total', 'LMDB write transactions committed in the data directory since it was made (each one commit, and with DURABILITY=fsync one flush)', () => sources.storageTransactions());
    // Per run of each shard: a restarted shard counts from zero again.
    shardTotal('parley_activations_total', 'actor activations made', (s) => s.activations);
    shardTotal('parley_passivations_total', 'actor activations dropped (idle, empty, or over the bound)', (s) => s.passivations);
    shardTotal('parley_commands_shed_total', 'commands answered unavailable because the commit backlog was full', (s) => s.shed);
    registrations('parley_attached_sockets', 'sockets registered with user actors', (s) => s.registrations.sockets);
    registrations('parley_presence_watchers', 'presence subscriptions registered with user actors', (s) => s.registrations.watchers);
    registrations('parley_channel_followers', 'channel subscribers (joined sockets and SSE viewers) registered with channel actors', (s) => s.registrations.followers);
    // Retention (actors/retention.ts): summed over the shards, per run of each shard.
    new Counter({
      name: 'parley_retention_swept_total', help: 'keys deleted by the retention sweeper, by database', labelNames: ['log'], registers: [registry],
      async collect() {
        this.reset();
        for (const s of await shardStats()) for (const [log, n] of Object.entries(s.retention.swept)) this.inc({ log }, n);
      },
    });
    shardTotal('parley_retention_passes_total', 'retention sweeper passes completed', (s) => s.retention.passes);
    new Gauge({
      name: 'parley_retention_last_sweep_seconds', help: 'how long the last retention pass took (the slowest shard)', registers: [registry],
      async collect() { this.set(Math.max(0, ...(await shardStats()).map((s) => s.retention.lastPassMs)) / 1000); },
    });
    perShard('parley_retention_last_sweep_timestamp_seconds', 'when the last completed retention pass started: what had expired by then is deleted (0: none yet)',
      (s) => s.retention.lastPassAt / 1000);
    new Gauge({
      name: 'parley_retention_worst_slice_seconds', help: 'the longest a retention slice held a shard\'s thread (one write batch)', registers: [registry],
      async collect() { this.set(Math.max(0, ...(await shardStats()).map((s) => s.retention.worstSliceMs)) / 1000); },
    });
    void actors;
  }
}

/** A Prometheus histogram per shard, built at scrape from plain counters (actors/latency-stats.ts). */
function latencyHistogram(registry: Registry, name: string, help: string, read: () => Promise<{ shard: number; latency: LatencySnapshot }[]>): void {
  registry.registerMetric({
    name,
    get: async () => {
      const values: SeriesValue[] = [];
      for (const { shard, latency } of await read()) histogramSeries(values, name, { shard: String(shard) }, latency);
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
    reset: () => undefined,
  } as never);
}
