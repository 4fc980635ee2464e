// The words of a message, as search knows them (docs/protocol.md "Search"; shared with clients,
// which may highlight alike): runs of letters and digits, case-folded and without diacritics
// ("Café" and "cafe" are one term), cut to MAX_TERM_CHARS. Han, Hiragana and Katakana are written
// without spaces, so each of their characters is a word of its own and a query "東京" matches
// both characters, in any order.
// One function (eachWord) cuts bodies (when indexing, and for highlights) and queries, so they agree.

/** Longer words are indexed (and searched) by their first MAX_TERM_CHARS characters. */
export const MAX_TERM_CHARS = 32;
/** A message contributes at most this many distinct terms to the index (a 16 KiB body could have thousands). */
export const MAX_TERMS_PER_MESSAGE = 256;
/** A query has at most this many distinct terms (the rest are ignored, and the reply says so by not highlighting them). */
export const MAX_QUERY_TERMS = 8;

const SPACELESS = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}';
const WORD = new RegExp(`[${SPACELESS}]|(?:(?![${SPACELESS}])[\\p{L}\\p{N}\\p{M}])+`, 'gu');
const MARKS = /\p{M}/gu;
/** Most bodies: in ASCII, words are runs of [A-Za-z0-9] and folding is lower-casing (NFKD changes no ASCII character, and none is a mark). */
const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** Case-folded, diacritics dropped, at most MAX_TERM_CHARS code points. */
export function normalizeTerm(word: string): string {
  const folded = word.normalize('NFKD').replace(MARKS, '').toLowerCase();
  if (folded.length <= MAX_TERM_CHARS) return folded;
  return Array.from(folded).slice(0, MAX_TERM_CHARS).join('');
}

/**
 * Calls `visit` with each word of `text` — its term and where it is: UTF-16 offsets [start, end),
 * as JavaScript strings index — in order, until `visit` returns true. A callback, not a
 * generator: indexing runs on every send, and the general path (Unicode classes, NFKD) costs
 * several times the ASCII one, which gives the same words (test/search-words.test.ts).
 */
export function eachWord(text: string, visit: (term: string, start: number, end: number) => boolean | void): void {
  if (ASCII_ONLY.test(text)) {
    eachAsciiWord(text, visit);
    return;
  }
  for (const m of text.matchAll(WORD)) {
    const term = normalizeTerm(m[0]);
    // A run of combining marks alone folds to nothing.
    if (term !== '' && visit(term, m.index, m.index + m[0].length) === true) return;
  }
}

function eachAsciiWord(text: string, visit: (term: string, start: number, end: number) => boolean | void): void {
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0;
    const lower = c | 0x20;
    const alnum = (c >= 0x30 && c <= 0x39) || (lower >= 0x61 && lower <= 0x7a);
    if (alnum) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      const term = text.slice(start, Math.min(i, start + MAX_TERM_CHARS)).toLowerCase();
      if (visit(term, start, i) === true) return;
      start = -1;
    }
  }
}

/** The distinct terms of `text`, in order of first appearance, at most `max`. */
export function distinctTerms(text: string | undefined, max: number): string[] {
  if (text === undefined) return [];
  const terms = new Set<string>();
  eachWord(text, (term) => {
    terms.add(term);
    return terms.size >= max;
  });
  return [...terms];
}

/** What the index holds for a message body. */
export const indexTerms = (body: string | undefined): string[] => distinctTerms(body, MAX_TERMS_PER_MESSAGE);

/** What a query looks for: every one of these terms (AND). */
export const queryTerms = (q: string): string[] => distinctTerms(q, MAX_QUERY_TERMS);

/** Where the query's terms are in a body: [start, end) pairs, in order. */
export function highlights(body: string, terms: ReadonlySet<string>): [number, number][] {
  const out: [number, number][] = [];
  eachWord(body, (term, start, end) => {
    if (terms.has(term)) out.push([start, end]);
  });
  return out;
}
