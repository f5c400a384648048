/**
 * The hot path's encoding (DESIGN 9): a batch of deliveries is written straight into one protobuf
 * frame, each delivery's JSON text copied once into it, without building message objects; the
 * service definitions pass such prebuilt frames through unchanged.
 */

function varintLen(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function putVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/**
 * A message whose field `outerField` (`cds.v1.Deliveries`, length-delimited) holds the subscription
 * name and the deliveries; `id`, when not 0, goes in field 1 first (SessionResponse.id).
 */
export function encodeDeliveries(
  outerField: number,
  subscription: string,
  items: readonly string[],
  id = 0,
): Buffer {
  const subLen = Buffer.byteLength(subscription);
  const lens = new Array<number>(items.length);
  let inner = 1 + varintLen(subLen) + subLen;
  for (let i = 0; i < items.length; i++) {
    const l = Buffer.byteLength(items[i] as string);
    lens[i] = l;
    inner += 1 + varintLen(l) + l;
  }
  const head = id === 0 ? 0 : 1 + varintLen(id);
  const buf = Buffer.allocUnsafe(head + 1 + varintLen(inner) + inner);
  let at = 0;
  if (id !== 0) {
    buf[at++] = 0x08;
    at = putVarint(buf, at, id);
  }
  buf[at++] = (outerField << 3) | 2;
  at = putVarint(buf, at, inner);
  buf[at++] = 0x0a;
  at = putVarint(buf, at, subLen);
  at += buf.write(subscription, at, 'utf8');
  for (let i = 0; i < items.length; i++) {
    buf[at++] = 0x12;
    at = putVarint(buf, at, lens[i] as number);
    at += buf.write(items[i] as string, at, 'utf8');
  }
  return buf;
}

type MethodDef = { responseSerialize: (v: never) => Buffer };

/** A service definition whose response encoders pass prebuilt frames (Buffers) through. */
export function passFrames<S extends Record<string, MethodDef>>(service: S): S {
  const out: Record<string, MethodDef> = {};
  for (const [name, def] of Object.entries(service)) {
    const encode = def.responseSerialize as (v: unknown) => Buffer;
    out[name] = { ...def, responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : encode(v)) };
  }
  return out as S;
}

/** The position of a delivery text (`{"position":"...`, as delivery/decoded.ts writes it). */
export function positionOf(delivery: string): string {
  const start = delivery.indexOf('"position":"') + 12;
  return delivery.slice(start, delivery.indexOf('"', start));
}
