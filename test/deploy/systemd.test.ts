// deploy/systemd/regmirror.service, checked by systemd's own tools. This machine's PID 1 is not
// systemd, so the unit is verified offline, not started. Its ExecStart is pointed at this checkout's
// dist/cli/main.js, since verify wants the command to exist and be executable.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = readFileSync(join(ROOT, 'deploy/systemd/regmirror.service'), 'utf8');

/** The unit in a temp folder, running this checkout's CLI. */
function unitHere(): string {
  const path = join(tempDir('systemd-unit'), 'regmirror.service');
  writeFileSync(path, UNIT.replaceAll('/opt/regmirror/dist/cli/main.js', join(ROOT, 'dist/cli/main.js')));
  return path;
}

describe('the systemd unit', () => {
  it('passes systemd-analyze verify without a warning', async () => {
    expect(UNIT).toContain('ExecStart=/opt/regmirror/dist/cli/main.js serve --config /etc/regmirror/regmirror.yaml');
    expect(UNIT).toContain('ExecReload=/bin/kill -HUP $MAINPID');
    // verify exits 0 on unknown keys and bad values, and only prints them: any output is a problem.
    const { stdout, stderr } = await promisify(execFile)('systemd-analyze', ['verify', unitHere()]);
    expect(stdout + stderr).toBe('');
  });

  it('has an exposure of 2.0 or less in systemd-analyze security, with V8 allowed to JIT', async () => {
    // --threshold is in tenths; the command exits non-zero above it.
    const { stdout } = await promisify(execFile)('systemd-analyze', ['security', '--offline=true', '--threshold=20', unitHere()]);
    expect(stdout).toMatch(/Overall exposure level for regmirror\.service: [0-2]\.\d/);
    expect(UNIT).not.toMatch(/^MemoryDenyWriteExecute=/m);
  });
});
