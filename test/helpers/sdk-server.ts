// For the SDK tests (test/sdk-*.test.ts): one real server per test file with a server API key,
// so a test can make the server drop a user's sockets (4002) and watch the SDK reconnect.
import { startTestServer, type TestServer } from './server.js';

interface Teardown { teardown(fn: () => unknown): void }

export const SDK_TEST_API_KEY = 'sdk-tests-users-key-0123456789abcdef';

export function startSdkTestServer(t: Teardown): Promise<TestServer> {
  return startTestServer(t, { apiKeys: [{ key: SDK_TEST_API_KEY, scopes: ['users'] }] });
}

/** The operator's disconnect (POST /v1/server/users/:id/disconnect): every socket of the user closes with 4002. */
export async function disconnectUser(s: TestServer, user: string): Promise<number> {
  const res = await fetch(`${s.base}/v1/server/users/${encodeURIComponent(user)}/disconnect`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SDK_TEST_API_KEY}` },
  });
  if (res.status !== 200) throw new Error(`disconnect ${user}: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { sockets: number }).sockets;
}
