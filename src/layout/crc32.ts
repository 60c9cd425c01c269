/**
 * CRC-32 as zlib, Ethernet and UEFI compute it (ISO-HDLC: reflected polynomial 0xEDB88320, initial
 * value and final xor 0xFFFFFFFF; check value of "123456789" = 0xCBF43926). Used by the GPT
 * (header and entry array, UEFI spec 2.10 section 5.3) and the source record.
 *
 * A table of our own rather than node:zlib's crc32: loading node:zlib costs every create and
 * inspect 1-1.5 ms on a quiet machine (more on a busy one) for at most 16 KiB of checksums.
 */

/** One entry per byte value, built on first use. */
let table: Uint32Array | undefined;

function crcTable(): Uint32Array {
  if (table) return table;
  table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

export function crc32(buf: Uint8Array): number {
  const t = crcTable();
  let crc = 0xffffffff;
  for (let i = 0; i < buf.length; i++) crc = t[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
