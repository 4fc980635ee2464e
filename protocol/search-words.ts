// The words of a message, as search knows them (docs/protocol.md "Search"; shared with clients,
// which may highlight alike): runs of letters and digits, case-folded and without diacritics
// ("Café" and "cafe" are one term), cut to MAX_TERM_CHARS. Han, Hiragana and Katakana are written
// without spaces, so each of their characters is a word of its own and a query "東京" matches
// both characters, in any order.
// The same function cuts bodies (when indexing, and for highlights) and queries, so they agree.

/** Longer words are indexed (and searched) by their first MAX_TERM_CHARS characters. */
export const MAX_TERM_CHARS = 32;
/** A message contributes at most this many distinct terms to the index (a 16 KiB body could have thousands). */
export const MAX_TERMS_PER_MESSAGE = 256;
/** A query has at most this many distinct terms (the rest are ignored, and the reply says so by not highlighting them). */
export const MAX_QUERY_TERMS = 8;

export interface Word {
  term: string;
  /** where the word is in the text: UTF-16 offsets [start, end), as JavaScript strings index */
  start: number;
  end: number;
}

const SPACELESS = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}';
const WORD = new RegExp(`[${SPACELESS}]|(?:(?![${SPACELESS}])[\\p{L}\\p{N}\\p{M}])+`, 'gu');
const MARKS = /\p{M}/gu;

/** Case-folded, diacritics dropped, at most MAX_TERM_CHARS code points. */
export function normalizeTerm(word: string): string {
  const folded = word.normalize('NFKD').replace(MARKS, '').toLowerCase();
  if (folded.length <= MAX_TERM_CHARS) return folded;
  return Array.from(folded).slice(0, MAX_TERM_CHARS).join('');
}

export function* wordsOf(text: string): Generator<Word> {
  for (const m of text.matchAll(WORD)) {
    const term = normalizeTerm(m[0]);
    // A run of combining marks alone folds to nothing.
    if (term !== '') yield { term, start: m.index, end: m.index + m[0].length };
  }
}

/** The distinct terms of `text`, in order of first appearance, at most `max`. */
export function distinctTerms(text: string | undefined, max: number): string[] {
  if (text === undefined) return [];
  const terms = new Set<string>();
  for (const w of wordsOf(text)) {
    terms.add(w.term);
    if (terms.size >= max) break;
  }
  return [...terms];
}

/** What the index holds for a message body. */
export const indexTerms = (body: string | undefined): string[] => distinctTerms(body, MAX_TERMS_PER_MESSAGE);

/** What a query looks for: every one of these terms (AND). */
export const queryTerms = (q: string): string[] => distinctTerms(q, MAX_QUERY_TERMS);

/** Where the query's terms are in a body: [start, end) pairs, in order. */
export function highlights(body: string, terms: ReadonlySet<string>): [number, number][] {
  const out: [number, number][] = [];
  for (const w of wordsOf(body)) if (terms.has(w.term)) out.push([w.start, w.end]);
  return out;
}
