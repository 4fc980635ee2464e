// Process entry: reads the config (defaults, env, flags), starts the server, and stops it
// cleanly on SIGTERM/SIGINT.
import { ConfigError, configHelp, loadConfig, printableConfig } from './config.js';
import { createLogger } from '../actors/log.js';
import { startServer } from './server.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(configHelp() + '\n');
    return;
  }
  let config;
  try {
    config = loadConfig(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`parley: ${err.message}\nRun with --help for the options.\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  log.info({ config: printableConfig(config) }, 'starting parley');
  const server = await startServer(config, log);

  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    // Refuse to hang: a stuck drain still ends the process.
    setTimeout(() => {
      log.fatal('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000).unref();
    server.stop().then(
      () => process.exit(process.exitCode ?? 0),
      (err: unknown) => {
        log.fatal({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  // Options that parse but cannot be used (a half-configured push provider, an unreadable key file).
  if (err instanceof ConfigError) {
    process.stderr.write(`parley: ${err.message}\nRun with --help for the options.\n`);
    process.exit(2);
  }
  process.stderr.write(`parley: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
