import { describe, expect, it } from 'vitest';
import { PoolError, ToolFailedError, toolFailedWith, toolStderr } from '../../src/errors.js';

describe('toolFailedWith: did this tool fail with this message', () => {
  const busy = new ToolFailedError('zpool export p exited with 1: cannot export', { exitCode: 1, stderr: "cannot export 'p': pool is busy\n" });
  it('matches the stderr of a ToolFailedError', () => {
    expect(toolFailedWith(busy, /\bbusy\b/)).toBe(true);
    expect(toolFailedWith(busy, /does not exist/)).toBe(false);
    expect(toolStderr(busy)).toBe("cannot export 'p': pool is busy\n");
  });
  it('is false for any other error, even one whose message or data matches', () => {
    expect(toolFailedWith(new PoolError('pool is busy', { stderr: 'pool is busy' }), /busy/)).toBe(false);
    expect(toolFailedWith(new Error('busy'), /busy/)).toBe(false);
    expect(toolFailedWith(undefined, /busy/)).toBe(false);
    expect(toolStderr(new Error('x'))).toBe('');
  });
  it('treats a missing stderr as empty', () => {
    expect(toolFailedWith(new ToolFailedError('x could not start', {}), /^$/)).toBe(true);
  });
});
