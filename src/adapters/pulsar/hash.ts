/**
 * The partition of an ordering key: Pulsar's own `Murmur3_32Hash` key hashing (MurmurHash3 x86 32-bit,
 * seed 0, over the key's UTF-8 bytes, sign bit cleared) modulo the partition count. A Java or C++
 * Pulsar producer created with `hashingScheme=Murmur3_32Hash` and the same key lands on the same
 * partition as cds does (docs/pulsar-format.md).
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixK1(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

/** MurmurHash3 x86_32 with seed 0 of `bytes`, as a signed 32-bit integer (Java's `int`). */
export function murmur3_32(bytes: Uint8Array): number {
  const len = bytes.length;
  let h = 0;
  const whole = len - (len % 4);
  for (let i = 0; i < whole; i += 4) {
    const k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    h ^= mixK1(k);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  for (let i = 0; i < len % 4; i++) k ^= bytes[whole + i]! << (i * 8);
  h ^= mixK1(k);
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** Pulsar's `Murmur3_32Hash` of a key: murmur3_32 of its UTF-8 bytes with the sign bit cleared. */
export function pulsarKeyHash(key: string): number {
  return murmur3_32(Buffer.from(key, 'utf8')) & 0x7fffffff;
}

/** The partition (0..partitions-1) of `key`, as Pulsar routes a keyed message with Murmur3_32Hash. */
export function partitionOfKey(key: string, partitions: number): number {
  return pulsarKeyHash(key) % partitions;
}
