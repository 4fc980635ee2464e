// Worker-thread entry of a shard: opens storage, wires the transport ports it was given, runs
// recovery, and exposes the control plane (stats, drain) over comlink.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { createLogger } from '../src/log.js';
import { openStorage } from '../storage/env.js';
import { Router } from './router.js';
import { Shard, type ShardStats } from './shard.js';
import type { ShardWorkerData } from './cluster.js';

const data = workerData as ShardWorkerData;
const log = createLogger(data.logLevel, { shard: data.index });
const storage = openStorage(data.dataDir, data.durability);
const shard = new Shard(data.index, new Router(data.shardCount), storage, log);
for (const [peer, port] of data.peers) shard.transport.connect(peer, port as MessagePort);
const recovered = shard.recover();
if (recovered > 0) log.info({ threads: recovered }, 'resuming interrupted fan-outs');

export interface ShardControl {
  stats(): ShardStats;
  /** Releases every pending output, then closes storage. The shard takes no more work. */
  drain(): Promise<void>;
}

const control: ShardControl = {
  stats: () => shard.stats(),
  async drain() {
    await shard.drain();
    shard.stop();
    await storage.close();
    shard.transport.close();
  },
};

Comlink.expose(control, nodeEndpoint(data.control as MessagePort));
parentPort?.postMessage('ready');
