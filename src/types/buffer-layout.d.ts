// The parts of buffer-layout 1.2.2 (pabigot/buffer-layout, MIT, no dependencies) that mkimage uses.
declare module 'buffer-layout' {
  export class Layout<T = unknown> {
    constructor(span: number, property?: string);
    span: number;
    property?: string;
    decode(b: Buffer, offset?: number): T;
    encode(src: T, b: Buffer, offset?: number): number;
    getSpan(b?: Buffer, offset?: number): number;
  }
  export class Structure<T = Record<string, unknown>> extends Layout<T> {
    fields: Layout[];
    offsetOf(property: string): number | undefined;
    layoutFor(property: string): Layout | undefined;
  }
  export function u8(property?: string): Layout<number>;
  export function u16(property?: string): Layout<number>;
  export function u32(property?: string): Layout<number>;
  export function blob(length: number, property?: string): Layout<Buffer>;
  export function seq<T>(element: Layout<T>, count: number, property?: string): Layout<T[]>;
  export function struct<T>(fields: Layout[], property?: string): Structure<T>;
  const _default: {
    Layout: typeof Layout;
    u8: typeof u8;
    u16: typeof u16;
    u32: typeof u32;
    blob: typeof blob;
    seq: typeof seq;
    struct: typeof struct;
  };
  export default _default;
}
