// The limiter alone: consume() checks per second (4 windows: 2/s,5/m,10/h,100/d style, but high
// enough to allow), and memory for 100,000 tracked keys. node dist/loadtest/rate-limiter-bench.js
import { BucketedRateLimiter, parseWindows } from '../src/limits/rate-limiter.js';

const windows = parseWindows('1000000/s,1000000/m,1000000/h,1000000/d');
const hot = new BucketedRateLimiter(windows, { sweep: false });
const keys = Array.from({ length: 1000 }, (_, i) => `user${i}`);
const N = 2_000_000;
let t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) hot.consume(keys[i % keys.length]);
let s = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`consume, 4 windows, 1000 hot keys: ${Math.round(N / s).toLocaleString('en')} checks/s (${((s / N) * 1e9).toFixed(0)} ns each)`);

global.gc?.();
const before = process.memoryUsage().heapUsed;
const many = new BucketedRateLimiter(parseWindows('2/s,5/m,10/h,100/d'), { sweep: false });
for (let i = 0; i < 100_000; i++) many.consume(`203.0.${i >> 8}.${i & 255}:${i}`);
global.gc?.();
const after = process.memoryUsage().heapUsed;
console.log(`100,000 keys (one hit each): ${((after - before) / 2 ** 20).toFixed(1)} MiB heap, ${Math.round((after - before) / 100_000)} B/key (size ${many.size})`);
