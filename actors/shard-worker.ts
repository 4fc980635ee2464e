// Worker-thread entry of a shard: opens storage, wires the transport ports it was given, runs
// recovery, and exposes the control plane (stats, drain, reconnect, recover) over comlink. A
// storage failure ends the worker with EXIT_STORAGE_FAILED, which the supervisor never restarts.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { createLogger } from './log.js';
import { openStorage } from '../storage/env.js';
import { openRemote, routerFor, type NodeLink, type RemoteLink } from './node-link.js';
import { DirectoryWriter } from '../src/cluster/directory.js';
import { EXIT_STORAGE_FAILED, Shard, type QuiescenceReport, type ShardStats } from './shard.js';
import type { ShardWorkerData } from './cluster.js';

const data = workerData as ShardWorkerData;
const log = createLogger(data.logLevel, { shard: data.index });
const storage = openStorage(data.dataDir, data.durability);
const shard = new Shard(data.index, routerFor(data.shardCount, data.link), storage, log, data.boot, {
  passivateAfterMs: data.passivateAfterMs,
  maxActivations: data.maxActivations,
  maxCommitBacklog: data.maxCommitBacklog,
  retentionMs: data.retentionMs,
  retentionSweepMs: data.retentionSweepMs,
  pushCoalesceMs: data.pushCoalesceMs,
  defaultLastSeen: data.defaultLastSeen,
  webhookEvents: data.webhookEvents,
  searchIndex: data.searchIndex,
  onFatal(err) {
    // Memory is ahead of the disk: end now, before anything else runs. The supervisor logs the
    // cause too (a worker's stdout may not be flushed before it ends); the exit code says why.
    parentPort?.postMessage({ fatal: err instanceof Error ? `${err.message}${err.cause ? ` (${String(err.cause)})` : ''}` : String(err) });
    process.exit(EXIT_STORAGE_FAILED);
  },
});
for (const [peer, port] of data.peers) shard.transport.connect(peer, port as MessagePort);
let remote: RemoteLink | null = null;

/** In a cluster: the other nodes' threads over NATS, and this shard's directory rows to them. */
async function joinNodes(link: NodeLink): Promise<void> {
  remote = await openRemote(shard.peer, shard.transportEvents, log, link);
  shard.transport.attachRemote(remote.transport);
  shard.replicateTo(await DirectoryWriter.open(remote.nc, link.cluster, log));
}

export interface ShardControl {
  stats(): ShardStats;
  /** Releases every pending output; reports idle and the per-peer envelope counts (ShardCluster.stop). */
  drain(): Promise<QuiescenceReport>;
  /** Shard `peer` was restarted: talk to it over `port` from now on. */
  reconnect(peer: number, port: MessagePort): void;
  /** Re-runs fan-out recovery (after another shard's restart lost the tells sent to it). */
  recover(): number;
  /** Closes transport and storage. Only once every shard is quiescent (see ShardCluster.stop). */
  close(): Promise<void>;
  /** Tests: blocks this thread (a hung shard) until it is terminated. */
  stall(): void;
}

const control: ShardControl = {
  stats: () => shard.stats(),
  drain: () => shard.drain(),
  reconnect: (peer, port) => shard.reconnect(peer, port),
  recover() {
    const n = shard.recover();
    if (n > 0) log.info({ threads: n }, 'resuming fan-outs after a shard restart');
    return n;
  },
  async close() {
    await shard.stop();
    shard.transport.close();
    await remote?.close();
    await storage.close();
  },
  stall() {
    parentPort?.postMessage('stalled');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  },
};

// Not a top-level await: the single binary runs this file as CommonJS.
void (data.link ? joinNodes(data.link) : Promise.resolve()).then(
  () => {
    const recovered = shard.recover();
    if (recovered > 0) log.info({ threads: recovered }, 'resuming interrupted fan-outs');
    Comlink.expose(control, nodeEndpoint(data.control as MessagePort));
    parentPort?.postMessage('ready');
  },
  (err: unknown) => {
    // The supervisor sees the exit before 'ready': the start fails with this in the log.
    log.fatal({ err }, 'shard could not join the cluster');
    process.exit(1);
  },
);
