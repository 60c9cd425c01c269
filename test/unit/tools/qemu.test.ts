import { describe, expect, it } from 'vitest';
import { KERNEL_MAX_INIT_ARGS, kernelWord, nvdimmArgs, qemuEscape, qemuSize, rootCmdline } from '../../../src/tools/qemu.js';
import { UsageError } from '../../../src/errors.js';
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

describe('virtio-pmem', () => {
  it('builds REFERENCE.md section 9 line: no nvdimm=on, the same backend, virtio-pmem-pci', () => {
    expect(nvdimmArgs({ imagePath: '/img/root.img', imageSizeBytes: 64 * MiB, memBytes: 512 * MiB, device: 'virtio-pmem' })).toEqual([
      '-machine', 'pc',
      '-m', '512M,slots=2,maxmem=576M',
      '-object', 'memory-backend-file,id=mem1,share=on,mem-path=/img/root.img,size=67108864',
      '-device', 'virtio-pmem-pci,memdev=mem1,id=vpmem1',
    ]);
  });
  it('read-only: readonly=on on the backend, no unarmed (an NVDIMM property)', () => {
    const args = nvdimmArgs({ imagePath: '/i', imageSizeBytes: 64 * MiB, readOnly: true, device: 'virtio-pmem' });
    expect(args[5]).toBe('memory-backend-file,id=mem1,share=on,mem-path=/i,size=67108864,readonly=on');
    expect(args[7]).toBe('virtio-pmem-pci,memdev=mem1,id=vpmem1');
  });
});

describe('rootCmdline with an init', () => {
  it('erofs is always ro', () => {
    expect(rootCmdline('erofs')).toBe('root=/dev/pmem0 rootfstype=erofs rootflags=dax ro');
  });
  it('init= and the words after --, quoted where they hold whitespace or are empty', () => {
    expect(rootCmdline('ext4', false, { path: '/.mkimage/init' })).toBe('root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init');
    expect(rootCmdline('ext4', false, { path: '/.mkimage/init', args: ['app', 'one two', '', 'k=v w', "it's", 'tab\there'] })).toBe(
      `root=/dev/pmem0 rootfstype=ext4 rootflags=dax rw init=/.mkimage/init -- app "one two" "" "k=v w" it's "tab\there"`,
    );
    expect(rootCmdline('xfs', true, { path: '/bin/my app', args: [] })).toBe('root=/dev/pmem0 rootfstype=xfs rootflags=dax ro init="/bin/my app"');
  });
  it('refuses what the kernel command line cannot carry: a double quote, a newline, a relative init, too many words, too long', () => {
    expect(() => kernelWord('say "hi"')).toThrow(/double quote or a control character/);
    expect(() => rootCmdline('ext4', false, { path: '/i', args: ['a\nb'] })).toThrow(UsageError);
    expect(() => rootCmdline('ext4', false, { path: 'bin/app' })).toThrow(/absolute path/);
    const args31 = Array.from({ length: KERNEL_MAX_INIT_ARGS - 1 }, (_, i) => `a${i}`);
    expect(rootCmdline('ext4', false, { path: '/i', args: args31 })).toContain('-- a0 a1');
    expect(() => rootCmdline('ext4', false, { path: '/i', args: [...args31, 'one more'] })).toThrow(/at most 31 arguments; 32 were given/);
    expect(() => rootCmdline('ext4', false, { path: '/i', args: ['x'.repeat(2000)] })).toThrow(/at most 2047/);
  });
});
