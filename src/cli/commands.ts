// The command line: a subcommand name first, or none (serve). Each answers its exit code
// (undefined: the server runs on).
import { ConfigError } from '../config.js';
import { BinaryRefusal } from '../sea/refusal.js';
import { reportConfigError, usage, UsageError } from './usage.js';
import { versionLine } from './version.js';

export async function runCli(argv: string[]): Promise<number | undefined> {
  const [first, ...rest] = argv;
  try {
    // Asked anywhere (parley backup --help too): the help, and nothing else.
    if (first === 'help' || argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(usage() + '\n');
      return 0;
    }
    switch (first) {
      case 'version': case '--version': case '-v':
        process.stdout.write(versionLine() + '\n');
        return 0;
      case 'backup':
        return await (await import('./backup.js')).backupCommand(rest);
      case 'check':
        return await (await import('./check.js')).checkCommand(rest);
      case 'reindex':
        return await (await import('./reindex.js')).reindexCommand(rest);
      case 'config':
        return (await import('./config-command.js')).configCommand(rest);
      case 'health':
        return await (await import('./health.js')).healthCommand(rest);
      default:
        if (first !== undefined && !first.startsWith('-')) throw new UsageError(`unknown command "${first}"`);
        return await (await import('./serve.js')).serve(argv);
    }
  } catch (err) {
    if (err instanceof ConfigError) return reportConfigError(err);
    if (err instanceof BinaryRefusal) {
      process.stderr.write(`parley: ${err.message}\n`);
      return 1;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`parley: ${err.message}\nRun parley help for the commands.\n`);
      return 2;
    }
    throw err;
  }
}
