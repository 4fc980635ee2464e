// Reading the server's Prometheus exposition (GET /metrics) in tests.

/** Every series of metric `name`: its label set as written (`{a="b"}`, '' for none) → value. */
export async function metricSeries(base: string, name: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const series = new Map<string, number>();
  const line = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`);
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (m) series.set(m[1] ?? '', Number(m[2]));
  }
  return series;
}

/** The sum of metric `name` over its series whose labels contain `label` (all of them by default). */
export async function metric(base: string, name: string, label = ''): Promise<number> {
  let sum = 0;
  for (const [labels, value] of await metricSeries(base, name)) if (labels.includes(label)) sum += value;
  return sum;
}
