// Every failure in words a person understands (issue 15: never a silent failure).
import { ParleyError } from '../../client/errors.js';

/** `what` names the action, e.g. "Sending the message". */
export function describeError(err: unknown, what?: string): string {
  const prefix = what ? `${what} failed: ` : '';
  if (!(err instanceof ParleyError)) return `${prefix}${(err as Error)?.message ?? String(err)}`;
  const detail = err.message && err.message !== err.code ? err.message : '';
  switch (err.code) {
    case 'rate_limited': {
      const s = err.retry !== undefined ? Math.max(1, Math.ceil(err.retry / 1000)) : undefined;
      return `${prefix}too many requests — please wait${s !== undefined ? ` ${s} second${s === 1 ? '' : 's'}` : ' a moment'} and try again.`;
    }
    case 'forbidden':
      return `${prefix}not allowed${detail ? ` (${detail})` : ''}.`;
    case 'too_large':
      return `${prefix}too large${detail ? ` (${detail})` : ''}.`;
    case 'unavailable':
      return `${prefix}${navigator.onLine ? 'the server cannot be reached right now' : 'you are offline'} — try again in a moment.`;
    case 'timeout':
      return `${prefix}the server did not answer in time — try again.`;
    case 'unauthorized':
      return `${prefix}${detail || 'you are not signed in'}.`;
    case 'not_found':
      return `${prefix}not found${detail ? ` (${detail})` : ''}.`;
    case 'conflict':
      return `${prefix}${detail || 'already taken'}.`;
    case 'bad_frame':
      return `${prefix}${detail || 'the input was not accepted'}.`;
    default:
      return `${prefix}${detail || 'something went wrong on the server'}.`;
  }
}
