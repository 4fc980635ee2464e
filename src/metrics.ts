// Prometheus metrics (prom-client): process defaults plus the gateway's counters. Shard figures
// are collected over the control plane when /metrics is scraped, never on the hot path.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ShardStats } from '../actors/shard.js';

export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'parley_connections', help: 'open WebSocket connections', registers: [this.registry] });
  readonly framesIn = new Counter({ name: 'parley_frames_in_total', help: 'WebSocket frames received', registers: [this.registry] });
  readonly framesOut = new Counter({ name: 'parley_frames_out_total', help: 'WebSocket frames sent', registers: [this.registry] });
  readonly slowConsumers = new Counter({ name: 'parley_slow_consumer_pauses_total', help: 'times a socket was paused for a full send buffer', registers: [this.registry] });

  constructor(shardStats: () => Promise<ShardStats[]>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'parley_' });
    const registry = this.registry;
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
    registrations('parley_attached_sockets', 'sockets registered with user actors', (s) => s.registrations.sockets);
    registrations('parley_presence_watchers', 'presence subscriptions registered with user actors', (s) => s.registrations.watchers);
    void actors;
  }
}
