// The internal admin port (ADMIN_PORT, docs/protocol.md §8.7): the operators' routes without a
// token, for a network only operators reach. Everything else there is 404.
import { ErrorCode } from '../../protocol/codes.js';
import type { Metrics } from '../metrics.js';
import { Reply } from './http.js';
import { uws, type UWS } from './uws.js';

export function adminApp(metrics: Metrics): UWS.TemplatedApp {
  const app = uws.App();
  app.get('/metrics', (res) => {
    const reply = new Reply(res);
    metrics.registry.metrics().then(
      (text) => reply.text(200, text, metrics.registry.contentType),
      () => reply.error(ErrorCode.internal, 'metrics failed'),
    );
  });
  app.any('/*', (res) => new Reply(res).error(ErrorCode.not_found, 'no such route'));
  return app;
}
