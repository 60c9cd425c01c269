import { describe, expect, it } from 'vitest';
import { nvdimmArgs, qemuEscape, qemuSize, rootCmdline } from '../../../src/tools/qemu.js';
import { GiB, MiB } from '../../../src/layout/units.js';

describe('nvdimmArgs', () => {
  it('builds the REFERENCE.md section 4 line: exact file size, maxmem = RAM + image, share=on, no label-size', () => {
    expect(nvdimmArgs({ imagePath: '/img/disk.img', imageSizeBytes: 20 * GiB, memBytes: GiB })).toEqual([
      '-machine', 'pc,nvdimm=on',
      '-m', '1024M,slots=2,maxmem=21504M',
      '-object', 'memory-backend-file,id=mem1,share=on,mem-path=/img/disk.img,size=21474836480',
      '-device', 'nvdimm,id=nvdimm1,memdev=mem1',
    ]);
  });
  it('read-only: readonly=on on the backend and unarmed=on on the device', () => {
    const args = nvdimmArgs({ imagePath: '/i', imageSizeBytes: 64 * MiB, readOnly: true, memBytes: 512 * MiB });
    expect(args[5]).toBe('memory-backend-file,id=mem1,share=on,mem-path=/i,size=67108864,readonly=on');
    expect(args[7]).toBe('nvdimm,id=nvdimm1,memdev=mem1,unarmed=on');
  });
  it('doubles commas in paths (QEMU option syntax) and never emits label-size', () => {
    expect(qemuEscape('/a,b/c.img')).toBe('/a,,b/c.img');
    const args = nvdimmArgs({ imagePath: '/a,b/c.img', imageSizeBytes: 64 * MiB });
    expect(args.join(' ')).toContain('mem-path=/a,,b/c.img,size=');
    expect(args.join(' ')).not.toContain('label-size');
  });
  it('writes sizes in MiB when exact, else bytes with a B suffix (a bare number would be MiB)', () => {
    expect(qemuSize(GiB)).toBe('1024M');
    expect(qemuSize(GiB + 1)).toBe(`${GiB + 1}B`);
  });
  it('rounds guest RAM up to whole MiB (--mem 1500K gave QEMU 1.5 TB once)', () => {
    const args = nvdimmArgs({ imagePath: '/i', imageSizeBytes: 64 * MiB, memBytes: 1500 * 1024 });
    expect(args[3]).toBe('2M,slots=2,maxmem=66M');
  });
  it('gives a DAX root command line', () => {
    expect(rootCmdline('xfs')).toBe('root=/dev/pmem0 rootfstype=xfs rootflags=dax rw');
    expect(rootCmdline('ext4', true)).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax ro');
  });
});
