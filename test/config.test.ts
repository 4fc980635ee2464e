// The typed config: defaults, env, flags (flags win), and a clear error naming the bad option.
import t from 'tap';
import { ConfigError, configHelp, loadConfig } from '../src/config.js';

t.test('defaults', async (t) => {
  const c = loadConfig([], {});
  t.match(c, { port: 8080, dataDir: './data', durability: 'fsync', logLevel: 'info', maxFrameBytes: 128 * 1024, heartbeatSeconds: 25 });
  t.ok(c.shards >= 1, 'shards default to the number of cores');
});

t.test('env vars, then flags on top', async (t) => {
  const env = { PORT: '9000', DATA_DIR: '/tmp/x', SHARDS: '3', DURABILITY: 'relaxed', LOG_LEVEL: 'warn' };
  t.match(loadConfig([], env), { port: 9000, dataDir: '/tmp/x', shards: 3, durability: 'relaxed', logLevel: 'warn' });
  t.match(loadConfig(['--port', '9100', '--shards=4'], env), { port: 9100, shards: 4, durability: 'relaxed' }, 'flags win');
  t.match(loadConfig([], { PORT: '' }), { port: 8080 }, 'an empty env var means unset');
});

t.test('invalid values stop start-up with a message naming the option', async (t) => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ['port out of range', [], { PORT: '70000' }, /PORT.*0 to 65535/],
    ['port not a number', ['--port', 'eighty'], {}, /--port/],
    ['zero shards', [], { SHARDS: '0' }, /SHARDS/],
    ['unknown durability', [], { DURABILITY: 'sometimes' }, /DURABILITY.*fsync, relaxed/],
    ['unknown log level', ['--log-level', 'loud'], {}, /--log-level/],
    ['unknown flag', ['--prot', '1'], {}, /prot/],
  ];
  for (const [name, argv, env, message] of cases) {
    t.throws(() => loadConfig(argv, env), { name: 'ConfigError', message }, name);
  }
  t.ok(new ConfigError('x') instanceof Error);
});

t.test('--help lists every option with its env var', async (t) => {
  const help = configHelp();
  for (const name of ['--port', 'PORT', '--data-dir', 'DATA_DIR', '--shards', 'SHARDS', '--durability', 'DURABILITY', '--log-level', 'LOG_LEVEL']) {
    t.match(help, name);
  }
});
