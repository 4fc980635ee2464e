// The server API acts through the same actor commands as a WebSocket client: a `cmd` with a
// Caller (the user it acts as, on the server API's pseudo-device) and a validated frame. The
// actor answers with an encoded ok/err frame, decoded here into a value or a ProtocolError.
import type { ShardCluster } from '../../actors/cluster.js';
import type { ClientCommand } from '../../actors/messages.js';
import { ServerFrame } from '../../protocol/codes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { decodeFrame } from '../../protocol/wire.js';

/** The `device` of messages the server API sends (a user's real devices have ids starting with d). */
export const SERVER_API_DEVICE = 'server-api';

export async function actorCommand<T = Record<string, unknown>>(
  cluster: ShardCluster, address: string, user: string, frame: ClientCommand['frame'], extra: { bot?: boolean; joined?: boolean } = {},
): Promise<T> {
  // r: 0 asks for an answer (an ok frame carries the result); without r a success answers nothing.
  const msg: ClientCommand = { op: 'cmd', caller: { user, device: SERVER_API_DEVICE, r: 0 }, frame, ...extra };
  const answer = await cluster.ask<Uint8Array | null>(address, msg);
  if (answer === null) return {} as T;
  const { t, r: _r, ...rest } = decodeFrame(answer) as Record<string, unknown>;
  if (t === ServerFrame.err) {
    const retry = rest.retry === undefined ? undefined : Number(rest.retry);
    throw new ProtocolError(String(rest.code), String(rest.msg), retry === undefined ? undefined : { retry });
  }
  return rest as T;
}
