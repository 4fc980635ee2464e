// `parley health [options]`: asks the local server's GET /readyz (the port and host of the same
// options the server takes) and exits 0 when it answers 200, else 1 — a health check for a
// container or a supervisor with no curl at hand (e.g. Docker's HEALTHCHECK).
import { loadConfig } from '../config.js';

/** A wildcard listen address is reached on loopback. */
function reachable(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export async function healthCommand(argv: string[]): Promise<number> {
  const config = loadConfig(argv, process.env);
  const url = `http://${reachable(config.host)}:${config.port}/readyz`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    const body = (await res.text()).trim();
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
