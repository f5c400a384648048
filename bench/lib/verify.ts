/**
 * After a run: which of the generator's decisions the service holds, found by paging through
 * GET /v1/decisions (only ids and revisions are kept, so a million items fit in memory).
 */

/** What the service holds of one run's decisions. */
export interface StoredCount {
  /** Distinct decisions of the run found. */
  readonly distinct: number;
  /** Items listed more than once. */
  readonly duplicates: number;
  /** Items listed in all (of this run). */
  readonly listed: number;
  /** Decision numbers `n` (from ids `<prefix>-<n>`) found, as a bitmap. */
  readonly found: Uint8Array;
  readonly pages: number;
  readonly ms: number;
}

/** Pages through the whole query, counting the items whose id is `<prefix>-<n>` with n < max. */
export async function countStored(
  url: string,
  key: string,
  prefix: string,
  max: number,
): Promise<StoredCount> {
  const t0 = performance.now();
  const found = new Uint8Array(max);
  const head = `${prefix}-`;
  let cursor: string | null = null;
  let distinct = 0;
  let duplicates = 0;
  let listed = 0;
  let pages = 0;
  let pageSize = 1000;
  for (;;) {
    const params = new URLSearchParams({ limit: String(pageSize) });
    if (cursor !== null) params.set('cursor', cursor);
    const get = () =>
      fetch(`${url}/v1/decisions?${params.toString()}`, { headers: { authorization: `Bearer ${key}` } });
    let res = await get();
    for (let attempt = 1; res.status >= 500 && attempt <= 3; attempt++) {
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, 200 * attempt));
      res = await get();
    }
    if (res.status === 400 && cursor === null && pageSize > 100) {
      await res.arrayBuffer();
      pageSize = 100; // the service caps the page size lower
      continue;
    }
    if (res.status !== 200) throw new Error(`GET /v1/decisions answered ${res.status}: ${await res.text()}`);
    const page = (await res.json()) as { items: { decisionId: string }[]; nextCursor: string | null };
    pages++;
    for (const it of page.items) {
      if (!it.decisionId.startsWith(head)) continue;
      const n = Number(it.decisionId.slice(head.length));
      if (!Number.isInteger(n) || n < 0 || n >= max) continue;
      listed++;
      if (found[n] === 1) duplicates++;
      else {
        found[n] = 1;
        distinct++;
      }
    }
    cursor = page.nextCursor;
    if (cursor === null || page.items.length === 0) break;
  }
  return { distinct, duplicates, listed, found, pages, ms: Math.round(performance.now() - t0) };
}
