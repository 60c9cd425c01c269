/**
 * Fixed-size little-endian on-disk structures, declared once, field by field in on-disk order,
 * with buffer-layout. Offsets come from the declaration (`offsetOf`), never written twice.
 *
 * buffer-layout's own 64-bit layout (`nu64`) goes through a double and silently rounds values
 * above 2^53: a checksum or an LBA would be corrupted. `u64` here is a BigInt layout.
 */
import BufferLayout, { Layout, type Structure } from 'buffer-layout';

class U64LE extends BufferLayout.Layout<bigint> {
  constructor(property?: string) {
    super(8, property);
  }
  override decode(b: Buffer, offset = 0): bigint {
    return b.readBigUInt64LE(offset);
  }
  override encode(src: bigint, b: Buffer, offset = 0): number {
    b.writeBigUInt64LE(src, offset);
    return 8;
  }
}

export const u8 = BufferLayout.u8;
export const u16 = BufferLayout.u16;
export const u32 = BufferLayout.u32;
export const blob = BufferLayout.blob;
export const seq = BufferLayout.seq;
export const struct = BufferLayout.struct;
export const u64 = (property?: string): Layout<bigint> => new U64LE(property);

export interface FixedStruct<T> {
  /** Size in bytes. */
  readonly span: number;
  /** Byte offset of a field, from the declaration. */
  offsetOf(field: keyof T & string): number;
  /** Size in bytes of a field. */
  spanOf(field: keyof T & string): number;
  decode(buf: Buffer, offset?: number): T;
  /** Encodes into a new zeroed buffer of `span` bytes. */
  encode(value: T): Buffer;
}

export function defineStruct<T>(fields: Layout[]): FixedStruct<T> {
  const layout: Structure<T> = BufferLayout.struct<T>(fields);
  return {
    span: layout.span,
    offsetOf(field) {
      const at = layout.offsetOf(field);
      if (at === undefined) throw new Error(`no field ${field}`);
      return at;
    },
    spanOf(field) {
      const f = layout.layoutFor(field);
      if (!f) throw new Error(`no field ${field}`);
      return f.span;
    },
    decode(buf, offset = 0) {
      if (buf.length < offset + layout.span) {
        throw new RangeError(`need ${layout.span} bytes at offset ${offset}, have ${buf.length - offset}`);
      }
      return layout.decode(buf, offset);
    },
    encode(value) {
      const buf = Buffer.alloc(layout.span);
      layout.encode(value, buf, 0);
      return buf;
    },
  };
}
