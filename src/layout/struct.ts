/**
 * Fixed-size little-endian on-disk structures, declared once, field by field in on-disk order.
 * Offsets come from the declaration (`offsetOf`), never written twice.
 *
 * A small codec of our own (it replaced the buffer-layout package: 84 KB of CommonJS that cost
 * 10-19 ms of every start, and whose untyped declarations broke `tsc --strict` in a project using
 * mkimage's shipped .d.ts). Each field is a name, a size in bytes and a pair of functions reading
 * and writing it at an offset. 64-bit fields are BigInts: a double would silently round values
 * above 2^53 and corrupt a checksum or an LBA.
 *
 * Encoding checks what Buffer's writers check (an integer out of range, a blob of the wrong
 * length is a RangeError/TypeError naming the field); a field missing from the value stays zero.
 */

/** One field of a fixed-size structure: `span` bytes at the offset the declaration gives it. */
export interface Field<T = unknown> {
  /** The field's name, as the spec names it (unnamed only as the element of a `seq`). */
  readonly property?: string;
  /** Size in bytes. */
  readonly span: number;
  decode(buf: Buffer, offset: number): T;
  encode(value: T, buf: Buffer, offset: number): void;
}

function field<T>(span: number, property: string | undefined, decode: Field<T>['decode'], encode: Field<T>['encode']): Field<T> {
  return { property, span, decode, encode };
}

const where = (f: { property?: string }): string => (f.property ? ` (field ${f.property})` : '');

export const u8 = (property?: string): Field<number> =>
  field(1, property, (b, o) => b.readUInt8(o), (v, b, o) => void b.writeUInt8(v, o));
export const u16 = (property?: string): Field<number> =>
  field(2, property, (b, o) => b.readUInt16LE(o), (v, b, o) => void b.writeUInt16LE(v, o));
export const u32 = (property?: string): Field<number> =>
  field(4, property, (b, o) => b.readUInt32LE(o), (v, b, o) => void b.writeUInt32LE(v, o));
export const u64 = (property?: string): Field<bigint> =>
  field(8, property, (b, o) => b.readBigUInt64LE(o), (v, b, o) => void b.writeBigUInt64LE(v, o));

/** `length` raw bytes; decodes to a copy, encodes only a Buffer of exactly `length` bytes. */
export function blob(length: number, property?: string): Field<Buffer> {
  const f: Field<Buffer> = field(
    length,
    property,
    (b, o) => Buffer.from(b.subarray(o, o + length)),
    (v, b, o) => {
      if (!Buffer.isBuffer(v) || v.length !== length) {
        throw new TypeError(`blob${where(f)} needs a Buffer of ${length} bytes, got ${Buffer.isBuffer(v) ? `${v.length} bytes` : typeof v}`);
      }
      v.copy(b, o);
    },
  );
  return f;
}

/** `count` elements of one field type, back to back; encodes at most `count` (the rest stay zero). */
export function seq<T>(element: Field<T>, count: number, property?: string): Field<T[]> {
  const f: Field<T[]> = field(
    element.span * count,
    property,
    (b, o) => Array.from({ length: count }, (_, i) => element.decode(b, o + i * element.span)),
    (v, b, o) => {
      if (v.length > count) throw new RangeError(`seq${where(f)} holds ${count} elements, got ${v.length}`);
      v.forEach((x, i) => element.encode(x, b, o + i * element.span));
    },
  );
  return f;
}

/** Fields one after another, as a field of an enclosing structure (an MBR's partition entries). */
export function struct<T>(fields: readonly Field<unknown>[], property?: string): Field<T> {
  let at = 0;
  const placed = fields.map((f) => {
    if (!f.property) throw new Error('every field of a struct needs a name');
    const p = { f, name: f.property, offset: at };
    at += f.span;
    return p;
  });
  return field<T>(
    at,
    property,
    (b, o) => {
      const out: Record<string, unknown> = {};
      for (const p of placed) out[p.name] = p.f.decode(b, o + p.offset);
      return out as T;
    },
    (v, b, o) => {
      const rec = v as Record<string, unknown>;
      for (const p of placed) if (rec[p.name] !== undefined) p.f.encode(rec[p.name], b, o + p.offset);
    },
  );
}

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

export function defineStruct<T>(fields: readonly Field<unknown>[]): FixedStruct<T> {
  const layout = struct<T>(fields);
  const offsets = new Map<string, { offset: number; span: number }>();
  let at = 0;
  for (const f of fields) {
    offsets.set(f.property as string, { offset: at, span: f.span });
    at += f.span;
  }
  const find = (name: string) => {
    const f = offsets.get(name);
    if (!f) throw new Error(`no field ${name}`);
    return f;
  };
  return {
    span: layout.span,
    offsetOf: (name) => find(name).offset,
    spanOf: (name) => find(name).span,
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
