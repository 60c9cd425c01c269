// Compiles guest/init.c into dist/guest/mkimage-init: the static PID 1 that `mkimage --from` puts
// into an image as /.mkimage/init (src/guest/init.ts reads it from there).
//
// Why a static C binary built here: the init must run in an image with no shell and no libc, so it
// cannot be a script and cannot link dynamically; Node is not in the guest. gcc is a build
// dependency (Debian: gcc, libc6-dev for the static glibc); `npm pack` runs `prepare`, so the
// published package carries the compiled binary in dist/ and an installed mkimage needs no compiler.
// glibc rather than musl: gcc and libc6-dev are on every Debian build machine; musl-gcc (Debian
// musl-tools) is used instead when present, for a ~10x smaller binary (MKIMAGE_INIT_CC overrides).
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(fileURLToPath(import.meta.url), '../..');

function which(cmd) {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Builds the guest init into `out` (default dist/guest/mkimage-init); returns the path. */
export function buildGuestInit(out = resolve(REPO, 'dist/guest/mkimage-init')) {
  const cc = process.env.MKIMAGE_INIT_CC || (which('musl-gcc') ? 'musl-gcc' : 'gcc');
  if (!which(cc) && !process.env.CI) {
    // No compiler at all: everything but --from works; --from says the init is missing
    // (GuestInitMissingError) and how to build it. CI always builds it (CI=true: a hard error).
    console.warn(`mkimage: ${cc} not found: the guest init (dist/guest/mkimage-init) was not built; install gcc and libc6-dev and run npm run build before using --from`);
    return undefined;
  }
  mkdirSync(resolve(out, '..'), { recursive: true });
  try {
    execFileSync(cc, ['-static', '-Os', '-s', '-Wall', '-Wextra', '-Werror', '-o', out, resolve(REPO, 'guest/init.c')], { stdio: 'inherit' });
  } catch (e) {
    throw new Error(`building the guest init (guest/init.c) with ${cc} -static failed: install gcc and libc6-dev (Debian) or set MKIMAGE_INIT_CC (${e.message})`);
  }
  statSync(out);
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) buildGuestInit();
