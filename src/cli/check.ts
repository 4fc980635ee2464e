// `parley check [dir]`: opens a data directory read-only (the server may be running) and
// verifies what the code relies on (docs/architecture.md):
//   - every log is gap-free: a thread's seq, its events' eseq, a user's u, a channel's seq run
//     without a hole from just above the retention floor (storage/retention.ts) to the head;
//   - a log entry belongs to something that exists (a thread, user or channel record), and a
//     message or event carries the seq / eseq of its key;
//   - every pending fan-out (the `fanout` marks a crash leaves for recovery, actors/shard.ts) is
//     resolvable: its thread exists, the entries it names are still in the logs, and every member
//     it would be delivered to is a user.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { openStorage, type RetainedLog, type StorageEnv } from '../../storage/env.js';
import { logFloor } from '../../storage/retention.js';
import { UsageError } from './usage.js';

export interface CheckReport {
  problems: string[];
  counts: { threads: number; messages: number; events: number; users: number; userLogEntries: number; channels: number; channelPosts: number; pendingFanouts: number };
}

/** Problems listed per log at most this often (a broken log would otherwise flood the output). */
const MAX_PER_LOG = 5;

export async function checkCommand(argv: string[]): Promise<number> {
  const positional = argv[0] !== undefined && !argv[0].startsWith('-') ? argv[0] : undefined;
  const config = loadConfig(positional === undefined ? argv : argv.slice(1), process.env);
  const dir = resolve(positional ?? config.dataDir);
  const report = await checkDataDir(dir);
  const c = report.counts;
  const summary = `${c.threads} threads, ${c.messages} messages, ${c.events} thread events, ${c.users} users, ${c.userLogEntries} user log entries, ${c.channels} channels, ${c.channelPosts} channel posts, ${c.pendingFanouts} pending fan-outs`;
  if (report.problems.length === 0) {
    process.stdout.write(`parley check: ${dir} is consistent (${summary})\n`);
    return 0;
  }
  for (const p of report.problems) process.stderr.write(`parley check: ${p}\n`);
  process.stderr.write(`parley check: ${dir}: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'} (${summary})\n`);
  return 1;
}

export async function checkDataDir(dir: string): Promise<CheckReport> {
  if (!existsSync(join(dir, 'data.mdb'))) throw new UsageError(`no data directory at ${dir} (it has no data.mdb)`);
  const storage = openStorage(dir, 'relaxed', { readOnly: true });
  try {
    return inspect(storage);
  } finally {
    await storage.close();
  }
}

function inspect(storage: StorageEnv): CheckReport {
  const { db } = storage;
  const problems: string[] = [];
  const counts: CheckReport['counts'] = { threads: 0, messages: 0, events: 0, users: 0, userLogEntries: 0, channels: 0, channelPosts: 0, pendingFanouts: 0 };
  for (const _ of db.threads.getKeys()) counts.threads++;
  for (const _ of db.users.getKeys()) counts.users++;
  for (const _ of db.channels.getKeys()) counts.channels++;

  const threadHeads = checkLog(storage, 'thread', 'thread', db.threadLog.getRange({}), (id) => db.threads.get(id) !== undefined, (v) => (v as { seq?: number }).seq, problems);
  counts.messages = threadHeads.entries;
  const eventHeads = checkLog(storage, 'events', 'thread', db.threadEvents.getRange({}), (id) => db.threads.get(id) !== undefined, (v) => (v as { eseq?: number }).eseq, problems);
  counts.events = eventHeads.entries;
  counts.userLogEntries = checkLog(storage, 'user', 'user', db.userLog.getRange({}), (id) => db.users.get(id) !== undefined, undefined, problems).entries;
  counts.channelPosts = checkLog(storage, 'channel', 'channel', db.channelLog.getRange({}), (id) => db.channels.get(id) !== undefined, undefined, problems).entries;

  for (const { key, value: mark } of db.fanout.getRange({})) {
    counts.pendingFanouts++;
    const thread = key as string;
    const meta = db.threads.get(thread);
    if (!meta) {
      problems.push(`pending fan-out of thread ${thread}: the thread does not exist`);
      continue;
    }
    const named: [string, number, RetainedLog, Map<string, number>][] = [['seq', mark.seq, 'thread', threadHeads.heads], ['eseq', mark.eseq, 'events', eventHeads.heads]];
    for (const [field, from, log, heads] of named) {
      if (!from) continue;
      const floor = logFloor(storage, log, thread);
      const head = heads.get(thread) ?? floor;
      if (from > head + 1) problems.push(`pending fan-out of thread ${thread} starts at ${field} ${from}, but its log ends at ${head}`);
      else if (from <= floor) problems.push(`pending fan-out of thread ${thread} starts at ${field} ${from}, but retention deleted up to ${floor}: those entries can no longer be delivered`);
    }
    for (const member of meta.members) {
      if (db.users.get(member) === undefined) problems.push(`pending fan-out of thread ${thread}: member ${member} is not a user`);
    }
  }
  return { problems, counts };
}

/**
 * Walks one log in key order ([id, n]) and reports holes: per id, n must run floor+1, floor+2, …
 * Answers every id's head and the number of entries.
 */
function checkLog(
  storage: StorageEnv, log: RetainedLog, owner: string,
  entries: Iterable<{ key: unknown; value: unknown }>,
  exists: (id: string) => boolean,
  ownNumber: ((value: unknown) => number | undefined) | undefined,
  problems: string[],
): { heads: Map<string, number>; entries: number } {
  const heads = new Map<string, number>();
  const name = { thread: 'thread log', events: 'thread events', user: 'user log', channel: 'channel log' }[log];
  const unit = { thread: 'seq', events: 'eseq', user: 'u', channel: 'seq' }[log];
  let id: string | undefined;
  let last = 0;
  let reported = 0;
  let n = 0;
  const report = (text: string) => {
    if (reported++ < MAX_PER_LOG) problems.push(`${name} of ${owner} ${id}: ${text}`);
    else if (reported === MAX_PER_LOG + 1) problems.push(`${name}: more problems not listed`);
  };
  for (const { key, value } of entries) {
    n++;
    const [entryId, seq] = key as [string, number];
    if (entryId !== id) {
      if (id !== undefined) heads.set(id, last);
      id = entryId;
      last = logFloor(storage, log, id);
      if (!exists(id)) report(`has entries but no ${owner} record`);
    }
    if (seq !== last + 1) {
      report(seq <= last ? `${unit} ${seq} out of order after ${last}` : `${unit} jumps from ${last} to ${seq} (${seq - last - 1} missing${last === logFloor(storage, log, id) ? `; the log should start at ${last + 1}` : ''})`);
    }
    const own = ownNumber?.(value);
    if (ownNumber && own !== seq) report(`the entry at ${unit} ${seq} says ${unit} ${String(own)}`);
    last = seq;
  }
  if (id !== undefined) heads.set(id, last);
  return { heads, entries: n };
}
