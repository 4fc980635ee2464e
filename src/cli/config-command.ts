// `parley config [options]`: the configuration the server would run with (defaults, env, flags),
// validated, as JSON with secrets masked — what it logs at start-up, without starting.
import { loadConfig, printableConfig } from '../config.js';

export function configCommand(argv: string[]): number {
  const config = loadConfig(argv, process.env);
  process.stdout.write(JSON.stringify(printableConfig(config), null, 2) + '\n');
  return 0;
}
