// `parley backup <dir>` (src/cli/backup.ts) while the server runs and takes sends: the copy is
// consistent (parley check passes), holds the secrets and media, and a server started on it serves
// every message acknowledged before the backup began, seq from 1 without a gap, and the media.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { downloadMedia, uploadMedia } from '../client/index.js';
import { runMain } from './helpers/binary.js';
import { startChildServer } from './helpers/child-server.js';
import { connect, newDevice, newUser, startTestServer, tempDataDir } from './helpers/server.js';

t.test('a hot backup during sends is consistent and serves the acknowledged messages', async (t) => {
  const s = await startTestServer(t);
  const [ann, bob] = [await newUser(s, 'ann'), await newUser(s, 'bob')];
  const annDevice = await newDevice(s, ann);
  const annPhone = await connect(t, s, annDevice);
  const BEFORE = 30;
  for (let i = 1; i <= BEFORE; i++) await annPhone.send({ to: bob.user, body: `before ${i}` });
  const picture = new TextEncoder().encode('a picture in the backup');
  const media = await uploadMedia(s.base, annDevice.token, picture, { mime: 'image/png' });
  await annPhone.send({ to: bob.user, body: 'with a picture', media });

  // 60 sends in flight (within the per-socket limit) while LMDB copies the environment.
  const dest = join(tempDataDir(t), 'copy');
  const during = Promise.all(Array.from({ length: 60 }, (_, i) => annPhone.send({ to: bob.user, body: `during ${i + 1}` })));
  const backup = await runMain(['backup', dest, '--data-dir', s.dataDir]);
  const acks = await during;
  t.equal(backup.code, 0, backup.stderr);
  t.match(backup.stdout, /^parley backup: .* → .*copy: data\.mdb [\d.]+ MiB, \d+ other files, \d+ ms/);
  t.same(readFileSync(join(dest, 'signing-secret')), readFileSync(join(s.dataDir, 'signing-secret')), 'the media signing secret is copied');
  t.notOk(existsSync(`${dest}.partial-${process.pid}`), 'no partial directory left');

  const check = await runMain(['check', dest]);
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /is consistent/);

  const copy = await startChildServer(dest);
  t.teardown(() => copy.proc.kill('SIGKILL'));
  const annAgain = await connect(t, copy, annDevice);
  const page = await annAgain.history({ thread: acks[0].thread, limit: 100 });
  const seqs = page.messages.map((m) => m.seq).sort((a, b) => a - b);
  t.ok(seqs.length >= BEFORE + 1 && seqs.length <= BEFORE + 61, `the copy holds ${seqs.length} messages`);
  t.same(seqs, seqs.map((_, i) => i + 1), 'seq from 1 without a gap');
  const bodies = new Map(page.messages.map((m) => [m.seq, m.body]));
  t.same(Array.from({ length: BEFORE }, (_, i) => bodies.get(i + 1)), Array.from({ length: BEFORE }, (_, i) => `before ${i + 1}`), 'every message acknowledged before the backup is in it');
  t.equal(bodies.get(BEFORE + 1), 'with a picture');
  const downloaded = await downloadMedia(copy.base, annDevice.token, media);
  t.same(Buffer.from(downloaded.data), Buffer.from(picture), 'the media blob is in the copy and served from it');
  await annAgain.close();
  copy.proc.kill('SIGTERM');
  t.equal((await copy.exited).code, 0);
});

t.test('backup refuses a destination that is not empty or inside the data, and a directory without data', async (t) => {
  const s = await startTestServer(t);
  const dir = tempDataDir(t);
  const full = join(dir, 'full');
  mkdirSync(full);
  writeFileSync(join(full, 'something'), 'x');
  const notEmpty = await runMain(['backup', full, '--data-dir', s.dataDir]);
  t.equal(notEmpty.code, 2);
  t.match(notEmpty.stderr, /exists and is not an empty directory/);
  const noData = await runMain(['backup', join(dir, 'copy'), '--data-dir', join(dir, 'nothing')]);
  t.equal(noData.code, 2);
  t.match(noData.stderr, /no data directory at .*nothing \(it has no data\.mdb\)/);
  const inside = await runMain(['backup', join(s.dataDir, 'backup'), '--data-dir', s.dataDir]);
  t.equal(inside.code, 2);
  t.match(inside.stderr, /is inside the data directory/);
  const noDest = await runMain(['backup']);
  t.equal(noDest.code, 2);
  t.match(noDest.stderr, /backup needs a destination/);
});
