// The page GET /i/:code shows a browser (docs/protocol.md "Invite links"): self-contained HTML,
// no scripts and no external resources, every value escaped.
import type { InviteInfo } from '../../actors/messages.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => ESCAPES[c]);

const STYLE = 'body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}'
  + 'h1{font-size:1.5rem;margin:0 0 .25rem}.sub{color:#666;margin:0 0 1.5rem}code{background:#f2f2f2;padding:.1rem .3rem;border-radius:4px}'
  + '.card{border:1px solid #ddd;border-radius:12px;padding:1.5rem}';

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">`
    + `<meta name="robots" content="noindex"><title>${title}</title><style>${STYLE}</style></head><body><div class="card">${body}</div></body></html>`;
}

export function invitePage(info: InviteInfo, url: string): string {
  const title = escapeHtml(info.title);
  const what = info.kind === 'group'
    ? `Group · ${info.members} member${info.members === 1 ? '' : 's'}`
    : `Channel @${escapeHtml(info.name ?? '')} · ${info.members} watching now`;
  const expires = new Date(info.expires).toISOString().replace('T', ' ').slice(0, 16);
  return page(`Join ${title}`, `<p class="sub">You are invited to join</p><h1>${title}</h1><p class="sub">${what}</p>`
    + `<p>Open this link in the Parley app to join: <code>${escapeHtml(url)}</code></p>`
    + `<p>Invite code <code>${escapeHtml(info.code)}</code>, valid until ${expires} UTC.</p>`);
}

export function missingInvitePage(): string {
  return page('Invite not found', '<h1>This invite link is not valid</h1><p class="sub">It may have expired, been revoked or used up. Ask for a new one.</p>');
}
