// Encodes a batch of envelopes to one owned buffer and decodes it back. An envelope that cannot
// be encoded (a bigint wider than 64 bits, a detached buffer, a function, a cycle) is dropped
// alone, the rest of its batch still goes.
import { Packr } from 'msgpackr';
import type { Envelope } from './envelope.js';

// Internal traffic only: records make repeated message shapes compact, and each packed batch
// carries its own record definitions (no shared structures), so any batch decodes on its own.
// A function has no faithful encoding: fail it rather than let msgpackr send it as nil.
const packr = new Packr({
  useRecords: true,
  mapsAsObjects: true,
  encodeUndefinedAsNil: true,
  writeFunction: () => {
    throw new TypeError('a function cannot be encoded');
  },
});

/** Called for each envelope dropped from a batch, with its index in the batch and the cause. */
export type OnDropped = (envelope: Envelope, index: number, cause: unknown) => Envelope | undefined;

/**
 * Packs `envelopes` into a buffer the caller owns (so it can be transferred). If the batch fails,
 * packs envelope by envelope: each that fails goes to `onDropped`, which may return a substitute
 * to send in its place (it must encode). Returns null when nothing is left to send.
 */
export function encodeBatch(envelopes: Envelope[], onDropped: OnDropped): Uint8Array | null {
  try {
    return owned(packr.pack(envelopes));
  } catch {
    // The batch error names no envelope: find the culprits one by one (failure path only).
    return encodeOneByOne(envelopes, onDropped);
  }
}

function encodeOneByOne(envelopes: Envelope[], onDropped: OnDropped): Uint8Array | null {
  const kept: Envelope[] = [];
  const origin: number[] = []; // index in `envelopes` of each kept envelope, -1 for a substitute
  for (let i = 0; i < envelopes.length; i++) {
    const failure = packFailure(envelopes[i]);
    const envelope = failure ? onDropped(envelopes[i], i, failure.cause) : envelopes[i];
    if (!envelope) continue;
    kept.push(envelope);
    origin.push(failure ? -1 : i);
  }
  if (kept.length === 0) return null;
  const failure = packFailure(kept);
  if (!failure) return owned(packr.pack(kept));
  // Each packs alone but not together (nesting right at the depth limit, or sheer size): drop
  // the originals too. Substitutes are flat error replies, which always pack.
  const substitutes: Envelope[] = [];
  for (let k = 0; k < kept.length; k++) {
    const envelope = origin[k] < 0 ? kept[k] : onDropped(kept[k], origin[k], failure.cause);
    if (envelope) substitutes.push(envelope);
  }
  return substitutes.length === 0 ? null : owned(packr.pack(substitutes));
}

function packFailure(value: unknown): { cause: unknown } | undefined {
  try {
    packr.pack(value);
    return undefined;
  } catch (cause) {
    return { cause };
  }
}

// pack() returns a view of msgpackr's shared scratch buffer: copy it once into a buffer we own.
function owned(packed: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(packed.length);
  bytes.set(packed);
  return bytes;
}

export class BatchDecodeError extends Error {
  override name = 'BatchDecodeError';
}

/** Decodes a batch; throws BatchDecodeError when the bytes are not a msgpack list. */
export function decodeBatch(bytes: Uint8Array): Envelope[] {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw new BatchDecodeError('batch could not be decoded', { cause });
  }
  if (!Array.isArray(value)) throw new BatchDecodeError(`batch is not a list but ${typeof value}`);
  return value as Envelope[];
}
