// List windowing for long threads: only the messages near the viewport are in the DOM; the rest
// are two spacers whose heights are the rows' measured heights (or an estimate for rows never
// shown). A thread of 10,000 messages then holds a few dozen rows, not 10,000.

/** Below this many messages every row is rendered (short threads need no bookkeeping). */
export const WINDOW_FROM = 200;
/** A row not measured yet: about one line of text with its time. */
export const ESTIMATED_ROW_PX = 56;
/** Rendered beyond the viewport on each side, so a fast scroll rarely shows a blank. */
export const OVERSCAN_PX = 1200;

export interface RowWindow {
  /** rows [start, end) are rendered */
  start: number;
  end: number;
  /** heights of the rows before start and from end on (spacers) */
  before: number;
  after: number;
}

/** `heightOf(i)`: row i's height including the gap after it. `top`: the viewport's scrollTop within the rows. */
export function rowWindow(count: number, heightOf: (i: number) => number, top: number, viewport: number): RowWindow {
  if (count < WINDOW_FROM) return { start: 0, end: count, before: 0, after: 0 };
  const from = top - OVERSCAN_PX;
  const to = top + viewport + OVERSCAN_PX;
  let y = 0;
  let start = count;
  let before = 0;
  let end = count;
  for (let i = 0; i < count; i++) {
    const h = heightOf(i);
    if (start === count && y + h > from) {
      start = i;
      before = y;
    }
    if (y >= to) {
      end = i;
      break;
    }
    y += h;
  }
  if (start === count) {
    start = Math.max(0, count - 1);
    before = y - heightOf(start);
  }
  let after = 0;
  for (let i = end; i < count; i++) after += heightOf(i);
  return { start, end: Math.max(end, start + 1), before, after };
}
