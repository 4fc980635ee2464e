// Times as people read them.
const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const day = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

export function shortTime(ts: number): string {
  const d = new Date(ts);
  return new Date().toDateString() === d.toDateString() ? clock.format(d) : day.format(d);
}

export function fullTime(ts: number): string {
  return new Date(ts).toLocaleString();
}

export function lastSeen(p: { online: boolean; last: number } | undefined): string {
  if (!p) return '';
  if (p.online) return 'online';
  if (!p.last) return '';
  return `last seen ${shortTime(p.last)}${new Date().toDateString() === new Date(p.last).toDateString() ? '' : ' ' + clock.format(new Date(p.last))}`;
}
