// The command line's help text and its error messages.
import { configHelp, type ConfigError } from '../config.js';

export const SUBCOMMANDS: readonly [string, string][] = [
  ['parley [options]', 'serve HTTP and WebSocket (the options below, or their environment variables)'],
  ['parley backup <dir> [options]', 'copy the data directory (DATA_DIR / --data-dir) to <dir> while the server runs: a consistent, compacted LMDB copy plus media and secrets'],
  ['parley check [dir] [options]', 'open a data directory read-only and verify its invariants (gap-free logs, resolvable pending fan-outs); exit 1 on a problem'],
  ['parley reindex [dir] [options]', 'with the server stopped: rebuild every thread\'s search index from its messages (what was sent while SEARCH was off becomes findable)'],
  ['parley config [options]', 'print the configuration the options and environment give (validated, secrets masked) without starting'],
  ['parley health [options]', 'exit 0 if the server on PORT/HOST answers GET /readyz with 200, else 1 (a container health check without curl)'],
  ['parley version', 'print the version (also --version, -v)'],
  ['parley help', 'print this help (also --help, -h)'],
];

export function usage(): string {
  const width = Math.max(...SUBCOMMANDS.map(([c]) => c.length));
  const commands = SUBCOMMANDS.map(([c, what]) => `  ${c.padEnd(width)}  ${what}`);
  // configHelp()'s own usage lines before the table: the commands above replace them.
  const table = configHelp().split('\n');
  const options = table.slice(table.findIndex((line) => line.startsWith('  --')));
  return ['Usage:', ...commands, '', 'Options (each also an environment variable, named after the flag):', ...options].join('\n');
}

export function reportConfigError(err: ConfigError): number {
  process.stderr.write(`parley: ${err.message}\nRun with --help for the options.\n`);
  return 2;
}

/** A usage mistake in a subcommand: said plainly, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
