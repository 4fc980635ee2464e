// Forces a full GC in every isolate of a Node process started with --inspect=127.0.0.1:0, through
// the inspector protocol: HeapProfiler.collectGarbage on the main thread and, via NodeWorker, on
// each worker thread. Used by `npm run bench -- --idle/--retained` for comparable RSS readings (benchmark only).
import { WebSocket } from 'ws';

interface CdpMessage {
  id?: number;
  method?: string;
  params?: any;
  result?: unknown;
  error?: { message: string };
}

export interface GcReport {
  /** isolates collected: the main thread plus the workers that answered */
  collected: number;
  /** workers that did not answer in time (e.g. a piscina worker parked in Atomics.wait) */
  skipped: string[];
  /** V8 heap used after the GC, bytes, per isolate ("main", or the worker's script) */
  heapUsed: Record<string, number>;
}

/** Rejects after timeoutMs overall; a worker that does not answer within 2 s is skipped. */
export async function collectGarbageEverywhere(wsUrl: string, timeoutMs = 20_000): Promise<GcReport> {
  const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
  const deadline = setTimeout(() => ws.terminate(), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('close', () => reject(new Error('inspector socket closed before open')));
    });
    let nextId = 1;
    const pending = new Map<string, (m: CdpMessage) => void>();
    const sessions: Array<{ id: string; url: string }> = [];
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as CdpMessage;
      if (m.id !== undefined) pending.get(`main:${m.id}`)?.(m);
      else if (m.method === 'NodeWorker.attachedToWorker') sessions.push({ id: m.params.sessionId as string, url: String(m.params.workerInfo?.url ?? '') });
      else if (m.method === 'NodeWorker.receivedMessageFromWorker') {
        const inner = JSON.parse(m.params.message as string) as CdpMessage;
        if (inner.id !== undefined) pending.get(`${m.params.sessionId}:${inner.id}`)?.(inner);
      }
    });
    const closed = new Promise<never>((_, reject) => ws.once('close', () => reject(new Error('inspector socket closed'))));
    const call = (method: string, params: object = {}, session?: string): Promise<CdpMessage> => {
      const id = nextId++;
      const answer = new Promise<CdpMessage>((resolve) => pending.set(`${session ?? 'main'}:${id}`, resolve));
      const payload = { id, method, params };
      if (session === undefined) ws.send(JSON.stringify(payload));
      else ws.send(JSON.stringify({ id: nextId++, method: 'NodeWorker.sendMessageToWorker', params: { sessionId: session, message: JSON.stringify(payload) } }));
      return Promise.race([answer, closed]).then((m) => {
        if (m.error) throw new Error(`${method}: ${m.error.message}`);
        return m;
      });
    };
    await call('NodeWorker.enable', { waitForDebuggerOnStart: false });
    await new Promise((res) => setTimeout(res, 300)); // attachedToWorker events for existing workers
    const skipped = new Set<string>();
    for (let round = 0; round < 2; round++) {
      for (const s of sessions) {
        if (skipped.has(s.id)) continue;
        const answered = await Promise.race([call('HeapProfiler.collectGarbage', {}, s.id).then(() => true), new Promise<boolean>((res) => setTimeout(() => res(false), 2000))]);
        if (!answered) skipped.add(s.id);
      }
      await call('HeapProfiler.collectGarbage');
    }
    const heapUsed: Record<string, number> = {};
    const usage = async (label: string, session?: string) => {
      const m = await call('Runtime.getHeapUsage', {}, session);
      heapUsed[label] = (m.result as { usedSize: number }).usedSize;
    };
    await usage('main');
    for (const s of sessions) if (!skipped.has(s.id)) await usage(`worker ${s.id} ${s.url.split('/').slice(-1)[0]}`, s.id);
    await call('NodeWorker.disable');
    return { heapUsed, collected: 1 + sessions.length - skipped.size, skipped: sessions.filter((s) => skipped.has(s.id)).map((s) => s.url.split('/').slice(-3).join('/')) };
  } finally {
    clearTimeout(deadline);
    ws.close();
  }
}
