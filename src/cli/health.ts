// `parley health [options]`: asks the local server's GET /readyz (the port and host of the same
// options the server takes; https when TLS_CERT is set) and exits 0 when it answers 200, else 1 —
// a health check for a container or a supervisor with no curl at hand (e.g. Docker's HEALTHCHECK).
import https from 'node:https';
import { loadConfig } from '../config.js';

/** A wildcard listen address is reached on loopback. */
function reachable(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * GET over https without verifying the certificate (TLS_CERT set): the check dials loopback, a
 * name the server's certificate does not carry, and it asks only whether the server is ready.
 */
function httpsStatus(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 5 s')));
    req.on('error', reject);
  });
}

export async function healthCommand(argv: string[]): Promise<number> {
  const config = loadConfig(argv, process.env);
  const url = `${config.tlsCert !== '' ? 'https' : 'http'}://${reachable(config.host)}:${config.port}/readyz`;
  try {
    const res = config.tlsCert !== '' ? await httpsStatus(url) : await fetch(url, { signal: AbortSignal.timeout(5000) }).then(async (r) => ({ status: r.status, body: await r.text() }));
    const body = res.body.trim();
    if (res.status === 200) {
      process.stdout.write(`parley health: ${url} ready\n`);
      return 0;
    }
    process.stderr.write(`parley health: ${url} answered ${res.status}${body ? ` ${body.slice(0, 200)}` : ''}\n`);
  } catch (err) {
    process.stderr.write(`parley health: ${url} unreachable: ${(err as Error).cause ? String((err as { cause: Error }).cause.message) : (err as Error).message}\n`);
  }
  return 1;
}
