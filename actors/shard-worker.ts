// Worker-thread entry of a shard: opens storage, wires the transport ports it was given, runs
// recovery, and exposes the control plane (stats, drain) over comlink.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { createLogger } from './log.js';
import { openStorage } from '../storage/env.js';
import { Router } from './router.js';
import { Shard, type ShardStats } from './shard.js';
import type { ShardWorkerData } from './cluster.js';

const data = workerData as ShardWorkerData;
const log = createLogger(data.logLevel, { shard: data.index });
const storage = openStorage(data.dataDir, data.durability);
const shard = new Shard(data.index, new Router(data.shardCount), storage, log, data.boot);
for (const [peer, port] of data.peers) shard.transport.connect(peer, port as MessagePort);
const recovered = shard.recover();
if (recovered > 0) log.info({ threads: recovered }, 'resuming interrupted fan-outs');

export interface ShardControl {
  stats(): ShardStats;
  /** Releases every pending output; resolves with the number of turns run so far. */
  drain(): Promise<number>;
  /** Closes transport and storage. Only once every shard is quiescent (see ShardCluster.stop). */
  close(): Promise<void>;
}

const control: ShardControl = {
  stats: () => shard.stats(),
  async drain() {
    await shard.drain();
    return shard.stats().turns;
  },
  async close() {
    shard.stop();
    shard.transport.close();
    await storage.close();
  },
};

Comlink.expose(control, nodeEndpoint(data.control as MessagePort));
parentPort?.postMessage('ready');
