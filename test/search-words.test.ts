// How search cuts text into words (protocol/search-words.ts): letters and digits, case-folded,
// diacritics dropped, long words cut, Han characters one by one — and the ASCII fast path gives
// exactly the words of the general Unicode path, whose answer for a text does not change when a
// non-ASCII separator (a no-break space) is appended to it.
import t from 'tap';
import { distinctTerms, eachWord, highlights, MAX_TERM_CHARS } from '../protocol/search-words.js';
import { Rng } from './helpers/fuzz-frames.js';

type Cut = [string, number, number][];
const cut = (text: string): Cut => {
  const out: Cut = [];
  eachWord(text, (term, start, end) => {
    out.push([term, start, end]);
  });
  return out;
};
/** The same text through the general path: a no-break space is neither a letter nor ASCII. */
const cutGeneral = (text: string): Cut => cut(`${text}\u00a0`);

t.test('words are runs of letters and digits, case-folded, without diacritics, long ones cut', async (t) => {
  t.same(cut('Hey, LUNCH at 12:30? q3_numbers'), [['hey', 0, 3], ['lunch', 5, 10], ['at', 11, 13], ['12', 14, 16], ['30', 17, 19], ['q3', 21, 23], ['numbers', 24, 31]]);
  t.same(cut('Caf\u00e9 CAFE cafe\u0301'), [['cafe', 0, 4], ['cafe', 5, 9], ['cafe', 10, 15]], 'precomposed and combining accents fold alike');
  t.same(cut('東京 tower'), [['東', 0, 1], ['京', 1, 2], ['tower', 3, 8]]);
  const long = 'x'.repeat(MAX_TERM_CHARS + 10);
  t.same(cut(`${long} end`), [['x'.repeat(MAX_TERM_CHARS), 0, long.length], ['end', long.length + 1, long.length + 4]], 'a long word: its first MAX_TERM_CHARS characters, its whole span');
  t.same(cutGeneral(`${long} end`), cut(`${long} end`));
  t.same(cut(''), []);
  t.same(cut(' \t!?'), []);
});

t.test('the ASCII path cuts every ASCII text as the general path does', async (t) => {
  const rng = new Rng(8);
  // Weighted towards word characters and the separators around them, with every ASCII code.
  const alphabet = 'aZ09 _-.,\'"\n';
  let texts = 0;
  for (let i = 0; i < 5000; i++) {
    let text = '';
    const n = rng.int(60);
    for (let j = 0; j < n; j++) text += rng.chance(0.7) ? alphabet[rng.int(alphabet.length)] : String.fromCharCode(rng.int(128));
    if (rng.chance(0.1)) text += 'W'.repeat(rng.int(80));
    const fast = cut(text);
    const general = cutGeneral(text);
    if (JSON.stringify(fast) !== JSON.stringify(general)) {
      t.same(fast, general, JSON.stringify(text));
      return;
    }
    texts++;
  }
  t.equal(texts, 5000, '5000 random ASCII texts, the same words both ways');
});

t.test('visit stops the cut; distinct terms and highlights use it', async (t) => {
  const seen: string[] = [];
  eachWord('one two three four', (term) => {
    seen.push(term);
    return seen.length === 2;
  });
  t.same(seen, ['one', 'two'], 'nothing after the visit that returned true');
  t.same(distinctTerms('a b a c b d', 3), ['a', 'b', 'c'], 'first appearances, at most max');
  t.same(distinctTerms(undefined, 3), []);
  t.same(highlights('Hello hello, HELLO world', new Set(['hello'])), [[0, 5], [6, 11], [13, 18]]);
  t.same(highlights('Crème brûlée', new Set(['creme'])), [[0, 5]], 'highlights on the general path too');
});
