// `parley [options]`: reads the config (defaults, env, flags), starts the server, and stops it
// cleanly on SIGTERM/SIGINT. The server is imported here, not before: the subcommands and --help
// never load the native addons.
import { ConfigError, loadConfig, printableConfig } from '../config.js';
import { createLogger } from '../../actors/log.js';
import { BinaryRefusal } from '../sea/refusal.js';
import { reportConfigError } from './usage.js';

export async function serve(argv: string[]): Promise<number | undefined> {
  let config;
  try {
    config = loadConfig(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) return reportConfigError(err);
    throw err;
  }
  const log = createLogger(config.logLevel);
  log.info({ config: printableConfig(config) }, 'starting parley');

  // Listening before the start: a SIGTERM that comes while the server starts (a supervisor
  // changing its mind, or one that saw `ready` logged) stops it cleanly once it is up.
  let server: { stop(): Promise<void> } | undefined;
  let signalled = false;
  const stop = () => {
    server!.stop().then(
      () => process.exit(process.exitCode ?? 0),
      (err: unknown) => {
        log.fatal({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, 'shutting down');
    // Refuse to hang: a stuck start or drain still ends the process.
    setTimeout(() => {
      log.fatal('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000).unref();
    if (server) stop();
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));

  try {
    const { startServer } = await import('../server.js');
    server = await startServer(config, log);
  } catch (err) {
    // Options that parse but cannot be used (a half-configured push provider, an unreadable key file).
    if (err instanceof ConfigError) return reportConfigError(err);
    if (err instanceof BinaryRefusal) throw err;
    process.stderr.write(`parley: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
  if (signalled) stop();
  return undefined;
}
