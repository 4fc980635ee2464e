// client/media.ts reads files with node:fs when the SDK runs in Node; the browser build never
// runs that branch (esbuild leaves node:* out). These declarations let the DOM-only type check pass.
declare module 'node:fs';
declare module 'node:crypto';
declare const Buffer: any;
type Buffer = any;
