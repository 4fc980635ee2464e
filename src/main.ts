// Process entry (node dist/src/main.js, and the single binary's main): `parley [options]` serves;
// `parley backup|check|version|help …` are the operator's subcommands (src/cli/).
import { runCli } from './cli/commands.js';

runCli(process.argv.slice(2)).then(
  (code) => {
    // A finished subcommand (or a refused start) ends the process, whatever handles it left.
    if (code !== undefined) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`parley: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
