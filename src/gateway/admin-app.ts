// The internal admin port (ADMIN_PORT, docs/protocol.md §8.7): the operators' routes without a
// token, for a network only operators reach. Everything else there is 404.
import { ErrorCode } from '../../protocol/codes.js';
import type { Metrics } from '../metrics.js';
import type { MetricsHistory } from '../metrics-history.js';
import { ProtocolError } from '../../protocol/errors.js';
import { mountAdminDashboard } from './admin-dashboard.js';
import { Reply } from './http.js';
import { uws, type UWS } from './uws.js';

export function adminApp(metrics: Metrics, history: MetricsHistory): UWS.TemplatedApp {
  const app = uws.App();
  app.get('/metrics', (res) => {
    const reply = new Reply(res);
    metrics.registry.metrics().then(
      (text) => reply.text(200, text, metrics.registry.contentType),
      () => reply.error(ErrorCode.internal, 'metrics failed'),
    );
  });
  mountAdminDashboard<{ query: string }>((pattern, handler) => app.get(pattern, (res, req) => {
    const reply = new Reply(res);
    try {
      handler(reply, { query: req.getQuery() ?? '' });
    } catch (err) {
      if (err instanceof ProtocolError) reply.error(err.code, err.message);
      else reply.error(ErrorCode.internal, 'internal error');
    }
  }), history, () => undefined, () => undefined);
  app.any('/*', (res) => new Reply(res).error(ErrorCode.not_found, 'no such route'));
  return app;
}
